-- Configuration (b) of `make bench`: the session check of ../shared/bench/conf/auth.lua (the
-- nginx + Lua peer) as a moongate pre hook, followed by token auth on the header it sets.
benchAuth = TykJS.TykMiddleware.NewMiddleware({})

benchAuth:NewProcessRequest(function(request, session, config)
  local auth = request.Headers["Authorization"]
  local token = auth and auth[1] or ""
  local o = request.ReturnOverrides
  if token == "" then
    o.ResponseCode = 401; o.ResponseError = "Authorization field missing"
    return benchAuth:ReturnData(request, {})
  end
  local s = json.decode(TykGetKeyData(token, config.APIID))
  if s.status == "error" then
    o.ResponseCode = 403; o.ResponseError = "Access to this API has been disallowed"
  elseif (s.expires or 0) > 0 and s.expires < os.time() then
    o.ResponseCode = 401; o.ResponseError = "Key has expired, please renew"
  else
    request.SetHeaders["x-internal-authorization"] = token
  end
  return benchAuth:ReturnData(request, {})
end)
