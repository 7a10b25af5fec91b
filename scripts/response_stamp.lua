-- A response hook: adds a header, removes one, and wraps a JSON body from the upstream.
responseStamp = TykJS.TykMiddleware.NewMiddleware({})

responseStamp:NewProcessResponse(function(response, request, session, config)
  response.SetHeaders["X-Response-Hook"] = config.APIID
  response.DeleteHeaders[#response.DeleteHeaders + 1] = "X-Upstream-Secret"
  local ok, decoded = pcall(json.decode, response.Body)
  if ok and type(decoded) == "table" then
    response.Body = json.encode({ data = decoded, gateway = "moongate" })
  end
  return responseStamp:ReturnResponseData(response, {})
end)
