-- Port of a Tyk JSVM pre-hook: authenticate the caller's Authorization against a backend when its
-- session is missing or expired, cache the result as a session, then let moongate's token auth
-- check it on an internal header. Line for line the same as the JavaScript; see
-- docs/porting-tyk-js.md.
--
-- config_data: auth_backend (e.g. http://127.0.0.1:9000), auth_resource (path on it),
--              session_expires_seconds (how long a validated caller is trusted).

backendAuth = TykJS.TykMiddleware.NewMiddleware({})

backendAuth:NewProcessRequest(function(request, session, config)
  local auth = request.Headers["Authorization"]
  local token = auth and auth[1] or ""
  if token == "" then
    request.ReturnOverrides.ResponseCode = 401
    request.ReturnOverrides.ResponseError = "Authorization field missing"
    return backendAuth:ReturnData(request, {})
  end

  local data = json.decode(TykGetKeyData(token, config.APIID))
  local now = os.time()
  local missing = data.status == "error"
  local expired = not missing and (data.expires or 0) > 0 and data.expires < now

  if missing or expired then
    log("backendAuth: validating caller against the auth backend")
    local reply = TykMakeHttpRequest(json.encode({
      Method = "GET",
      Domain = config.config_data.auth_backend,
      Resource = config.config_data.auth_resource,
      Headers = { Authorization = token },
    }))
    if reply == nil then
      request.ReturnOverrides.ResponseCode = 502
      request.ReturnOverrides.ResponseError = "Auth backend unreachable"
      return backendAuth:ReturnData(request, {})
    end
    local res = json.decode(reply)
    if res.Code ~= 200 then
      request.ReturnOverrides.ResponseCode = 401
      request.ReturnOverrides.ResponseError = "Invalid credentials"
      return backendAuth:ReturnData(request, {})
    end
    local ttl = tonumber(config.config_data.session_expires_seconds) or 300
    TykSetKeyData(token, json.encode({
      expires = now + ttl,
      access_rights = {},
      meta_data = { validated_by = "backend" },
    }), "1")
  end

  -- Token auth on this internal header does the session checks from here on.
  request.SetHeaders["x-internal-authorization"] = token
  return backendAuth:ReturnData(request, {})
end)
