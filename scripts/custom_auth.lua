-- A custom auth hook (auth_check): callers send `X-Signed-User: <user>.<signature>`, where the
-- signature is base64(<user> .. config_data.signing_secret). A valid caller gets a session built
-- here, kept under its token (AuthValue); moongate still applies the session checks after it.
customAuth = TykJS.TykMiddleware.NewMiddleware({})

customAuth:NewProcessRequest(function(request, session, config)
  local header = request.Headers["X-Signed-User"]
  local token = header and header[1] or ""
  local user, signature = token:match("^([%w_-]+)%.(.+)$")
  if not user or b64enc(user .. config.config_data.signing_secret) ~= signature then
    request.ReturnOverrides.ResponseCode = 403
    request.ReturnOverrides.ResponseError = "Invalid signature"
    return customAuth:ReturnAuthData(request, {})
  end

  local lifetime = tonumber(config.config_data.session_seconds) or 3600
  local result = customAuth:ReturnAuthData(request, {
    alias = user,
    -- A negative lifetime in config_data builds already expired sessions (moongate answers 401).
    expires = os.time() + lifetime,
    access_rights = {},
    meta_data = { user = user },
  })
  result.AuthValue = token
  return result
end)
