-- Moongate's Lua prelude: runs once in every hook state, before any script.
-- It builds Tyk's JavaScript middleware object model and the environments that keep a request's
-- globals to itself. `host` holds the Rust functions this file wires in.
local host = ...
local running, setmetatable, getmetatable, rawget, type, next, pairs = coroutine.running, setmetatable, getmetatable, rawget, type, next, pairs

-- TykJS.TykMiddleware: NewMiddleware, NewProcessRequest, ReturnData, ReturnAuthData,
-- NewProcessResponse, ReturnResponseData. Methods are closures over their object, so both
-- `mw:ReturnData(req, meta)` and `mw.ReturnData(req, meta)` work, as ported JavaScript writes either.
local function new_middleware(configuration)
  local mw = { configuration = configuration }
  local function args(a, b, c)
    if a == mw then return b, c end
    return a, b
  end
  mw.NewProcessRequest = function(a, b) mw.__process_request = (type(a) == "function") and a or b end
  mw.NewProcessResponse = function(a, b) mw.__process_response = (type(a) == "function") and a or b end
  mw.ReturnData = function(a, b, c)
    local request, meta = args(a, b, c)
    return { Request = request, SessionMeta = meta }
  end
  mw.ReturnAuthData = function(a, b, c)
    local request, session = args(a, b, c)
    return { Request = request, Session = session }
  end
  mw.ReturnResponseData = function(a, b, c)
    local response, meta = args(a, b, c)
    return { Response = response, SessionMeta = meta }
  end
  return mw
end

local TykJS = {
  TykMiddleware = { NewMiddleware = new_middleware },
  TykEventHandlers = {
    NewEventHandler = function(configuration)
      local h = { configuration = configuration }
      h.NewHandler = function(a, b) h.__handler = (type(a) == "function") and a or b end
      return h
    end,
  },
}

-- Globals a script writes while handling a request live in a table of that request's coroutine;
-- globals written while the script loads (its middleware objects) are shared by every request.
local per_request = setmetatable({}, { __mode = "k" })

local function script_env(shared)
  local env = {}
  setmetatable(env, {
    __index = function(_, k)
      local mine = per_request[running()]
      if mine ~= nil then
        local v = mine[k]
        if v ~= nil then return v end
      end
      return shared[k]
    end,
    __newindex = function(_, k, v)
      local mine = per_request[running()]
      if mine ~= nil then mine[k] = v else shared[k] = v end
    end,
  })
  return env
end

-- Calls a hook function with a fresh set of request globals (coroutines may be reused).
local function call(fn, ...)
  per_request[running()] = {}
  return fn(...)
end

-- Header tables answer any capitalisation: `request.Headers["x-api-key"]` finds `X-Api-Key`.
local lower = string.lower
local headers_mt = {
  __index = function(t, k)
    if type(k) ~= "string" then return nil end
    local want = lower(k)
    for name, v in next, t do
      if lower(name) == want then return v end
    end
    return nil
  end,
}

-- The request table. Rust hands over a few scalars in one call; the tables a hook may use
-- (Headers, Params, SetHeaders, ..., ReturnOverrides) are made the first time it touches them, so
-- a hook pays only for what it reads. The raw header list and query string wait in `pending`.
local pending = setmetatable({}, { __mode = "k" })
local char, tonumber, gsub, gmatch = string.char, tonumber, string.gsub, string.gmatch

local function unescape(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local makers = {
  Headers = function(raw)
    local h = setmetatable({}, headers_mt)
    for name, value in gmatch(raw.headers, "([^\0]*)\0([^\0]*)\0") do
      local list = rawget(h, name)
      if list then list[#list + 1] = value else rawset(h, name, { value }) end
    end
    return h
  end,
  Params = function(raw)
    local p = {}
    for pair in gmatch(raw.query, "[^&]+") do
      local k, v = pair:match("^([^=]*)=?(.*)$")
      k, v = unescape(k), unescape(v)
      local list = p[k]
      if list then list[#list + 1] = v else p[k] = { v } end
    end
    return p
  end,
  SetHeaders = function() return {} end,
  DeleteHeaders = function() return {} end,
  AddParams = function() return {} end,
  ExtendedParams = function() return {} end,
  DeleteParams = function() return {} end,
  ReturnOverrides = function()
    return { ResponseCode = 0, ResponseError = "", ResponseBody = "", ResponseHeaders = {}, OverrideError = false }
  end,
}

local request_mt = {
  __index = function(t, k)
    local make = makers[k]
    if make == nil then return nil end
    local v = make(pending[t])
    rawset(t, k, v)
    return v
  end,
}

local function new_request(method, url, query, headers, body)
  local t = setmetatable({ Method = method, URL = url, RequestURI = url, Scheme = "http", Body = body, IgnoreBody = false }, request_mt)
  pending[t] = { headers = headers, query = query }
  return t
end

-- Touches every lazy field, so that encoding a request shows all of it.
local function materialize(v)
  if type(v) == "table" and getmetatable(v) == request_mt then
    for k in pairs(makers) do local _ = v[k] end
  end
  return v
end

return {
  TykJS = TykJS,
  new_request = new_request,
  materialize = materialize,
  script_env = script_env,
  call = call,
  headers_mt = headers_mt,
}
