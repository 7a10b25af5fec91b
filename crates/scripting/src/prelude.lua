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
-- A hook's coroutine maps to `false` until the hook writes its first global, so a hook that
-- writes none costs no table. Until some request of a script writes a global, its reads go
-- straight to the shared table (a plain `__index` table, no function call per read).
local per_request = setmetatable({}, { __mode = "k" })

local function script_env(shared)
  local env, mt = {}, {}
  local function read(_, k)
    local mine = per_request[running()]
    if mine then
      local v = mine[k]
      if v ~= nil then return v end
    end
    return shared[k]
  end
  mt.__index = shared
  mt.__newindex = function(_, k, v)
    local co = running()
    local mine = per_request[co]
    if mine == nil then shared[k] = v; return end
    if mine == false then mine = {}; per_request[co] = mine end
    mine[k] = v
    mt.__index = read
  end
  return setmetatable(env, mt)
end

-- Calls a hook function with a fresh set of request globals (coroutines may be reused).
local function call(fn, ...)
  per_request[running()] = false
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

local match, find, sub = string.match, string.find, string.sub

-- The request's Headers fill themselves: Rust hands over the list as `\1Name\2value` pairs
-- (bytes that no header name or value can hold) ending in `\1`. Reading a name in Go's canonical
-- spelling, as scripts mostly do, finds just that name with a plain search; any other read, and
-- `pairs`, parse the whole list once, after which the table is an ordinary header table. Parsing
-- every header of every request in Lua cost more than the rest of a simple hook.
local unparsed = setmetatable({}, { __mode = "k" })

local function fill(h)
  local s = unparsed[h]
  if s == nil then return end
  unparsed[h] = nil
  setmetatable(h, headers_mt)
  -- Names already looked up hold all their values; assignments by the hook stay as they are.
  local mine, pos = {}, 1
  while true do
    local name, value, after = match(s, "^\1([^\2]*)\2([^\1]*)()", pos)
    if name == nil then break end
    local list = mine[name]
    if list then
      list[#list + 1] = value
    elseif rawget(h, name) == nil then
      list = { value }
      mine[name] = list
      rawset(h, name, list)
    end
    pos = after
  end
end

local lazy_headers_mt = {
  __index = function(h, k)
    if type(k) ~= "string" then return nil end
    local s = unparsed[h]
    local needle = "\1" .. k .. "\2"
    local at = find(s, needle, 1, true)
    if at == nil then
      fill(h)
      return h[k]
    end
    local list, n = {}, 0
    while at do
      local from = at + #needle
      local to = find(s, "\1", from, true)
      n = n + 1
      list[n] = sub(s, from, to - 1)
      at = find(s, needle, to, true)
    end
    rawset(h, k, list)
    return list
  end,
  __pairs = function(h)
    fill(h)
    return next, h, nil
  end,
}

local makers = {
  Headers = function(raw)
    local h = setmetatable({}, lazy_headers_mt)
    unparsed[h] = raw.headers
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

-- What the pipeline must apply from a returned request, as bits, so that Rust reads only those
-- fields (every read from Rust is a call into the VM).
local DELETE_HEADERS, SET_HEADERS, BODY, URL, PARAMS, OVERRIDES = 1, 2, 4, 8, 16, 32
-- Which of the lazy edit tables a request has made or been given, so that only those are checked.
local TOUCHED = {
  DeleteHeaders = DELETE_HEADERS, SetHeaders = SET_HEADERS, ReturnOverrides = OVERRIDES,
  DeleteParams = 64, AddParams = 128, ExtendedParams = 256,
}
local ALL = 0x1ff

local request_mt = {
  __index = function(t, k)
    local make = makers[k]
    if make == nil then return nil end
    local raw = pending[t]
    local v = make(raw)
    rawset(t, k, v)
    raw.touched = raw.touched | (TOUCHED[k] or 0)
    return v
  end,
  -- Only keys the table lacks come here, such as `request.SetHeaders = {...}` before any read.
  __newindex = function(t, k, v)
    rawset(t, k, v)
    local bit, raw = TOUCHED[k], pending[t]
    if bit and raw then raw.touched = raw.touched | bit end
  end,
}

local function new_request(method, url, query, headers, body)
  -- The nil fields only size the table for the lazy ones, so that making them needs no rehash.
  local t = setmetatable({
    Method = method, URL = url, RequestURI = url, Scheme = "http", Body = body, IgnoreBody = false,
    Headers = nil, SetHeaders = nil, ReturnOverrides = nil,
  }, request_mt)
  pending[t] = { headers = headers, query = query, touched = 0 }
  return t
end

local function filled(t) return type(t) == "table" and next(t) ~= nil end

local function changes(req, url, body)
  local bits = 0
  local raw = pending[req]
  -- A table the hook built itself has no record: check all of it. Touched fields are present, so
  -- reading them calls no metamethod.
  local touched = raw and raw.touched or ALL
  if touched & DELETE_HEADERS ~= 0 and filled(req.DeleteHeaders) then bits = bits | DELETE_HEADERS end
  if touched & SET_HEADERS ~= 0 and filled(req.SetHeaders) then bits = bits | SET_HEADERS end
  if req.Body ~= body and not req.IgnoreBody then bits = bits | BODY end
  local u = req.URL
  if u ~= nil and u ~= url then bits = bits | URL end
  if touched & (64 | 128 | 256) ~= 0
    and (filled(req.DeleteParams) or filled(req.AddParams) or filled(req.ExtendedParams)) then
    bits = bits | PARAMS
  end
  if touched & OVERRIDES ~= 0 then
    local o = req.ReturnOverrides
    if type(o) == "table" and o.ResponseCode ~= 0 and o.ResponseCode ~= nil then bits = bits | OVERRIDES end
  end
  return bits
end

-- Runs a request hook: builds the request, calls the hook with fresh request globals, and reads
-- its answer in either form (`ReturnData`'s table, or plain `request, meta` / custom auth's
-- `request, session, key`). Returns the request and its change bits, the meta, the session and
-- the key; nothing when the hook returned no request table.
local function run_request(fn, auth, method, url, query, headers, body, session, config)
  per_request[running()] = false
  local request = new_request(method, url, query, headers, body)
  local first, second, third = fn(request, session or {}, config)
  if type(first) ~= "table" then return nil end
  local req, meta, sess, key = first, nil, nil, nil
  if first.Request ~= nil then
    req, meta, sess, key = first.Request, first.SessionMeta, first.Session, first.AuthValue
  elseif auth then
    sess, key = second, third
  else
    meta = second
  end
  if type(req) ~= "table" then return nil end
  return req, changes(req, url, body), meta, sess, key
end

-- Touches every lazy field, so that encoding a request shows all of it.
local function materialize(v)
  if type(v) == "table" then
    if getmetatable(v) == request_mt then
      for k in pairs(makers) do local _ = v[k] end
      fill(rawget(v, "Headers"))
    elseif unparsed[v] then
      fill(v)
    end
  end
  return v
end

return {
  TykJS = TykJS,
  new_request = new_request,
  materialize = materialize,
  script_env = script_env,
  call = call,
  run_request = run_request,
  headers_mt = headers_mt,
}
