-- A post hook that stamps headers for the upstream from the session (needs require_session: true)
-- and counts the caller's requests in the session's meta data, which moongate saves at the end of
-- the request.
stamp = TykJS.TykMiddleware.NewMiddleware({})

stamp:NewProcessRequest(function(request, session, config)
  request.SetHeaders["X-Moongate-Api"] = config.APIID
  request.SetHeaders["X-Moongate-Alias"] = session.alias or ""
  request.DeleteHeaders[#request.DeleteHeaders + 1] = "X-Debug"

  -- Meta values must be strings; returning the table replaces meta_data wholesale.
  local meta = session.meta_data or {}
  meta.requests = tostring((tonumber(meta.requests) or 0) + 1)
  return stamp:ReturnData(request, meta)
end)
