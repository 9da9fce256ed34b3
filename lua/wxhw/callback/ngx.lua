--- OpenResty adapter for the callback handlers (content_by_lua_block):
--
--   location = /wx/push {
--     content_by_lua_block { require("wxhw.callback.ngx").serve(require("gateway").nginx().mp) }
--   }
--
-- Reads the raw body (also when nginx buffered it to a file), passes the
-- query, headers and method to the plain handler and writes its answer.
-- Nothing here blocks: handlers use cosockets (wxhw.call.remote) and
-- ngx.shared stores (wxhw.kv.ngx_shared) or the shm table
-- (wxhw.kv.shm: a mutex held for a probe and a copy).
local M = {}

local function raw_body()
  ngx.req.read_body() -- luacheck: ignore ngx
  local body = ngx.req.get_body_data() -- luacheck: ignore ngx
  if body then return body end
  local path = ngx.req.get_body_file() -- luacheck: ignore ngx
  if not path then return "" end
  local f = io.open(path, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

-- In place: the table is get_uri_args' own, fresh per request.
local function first_values(t)
  for k, v in pairs(t) do
    local w = v
    if type(w) == "table" then w = w[1] end
    if w == true then w = "" end
    if w ~= v then t[k] = w end -- assigning an existing key is allowed mid-traversal
  end
  return t
end

local callback = require "wxhw.callback"
local function request_headers() return ngx.req.get_headers(100) end -- luacheck: ignore ngx
local LAZY_HEADERS = callback.lazy_headers(request_headers)

local shared_content_type = callback.shared_content_type

local function set_headers(h)
  for k, v in pairs(h or {}) do ngx.header[k] = v end -- luacheck: ignore ngx
end

local function respond(status, h, out)
  ngx.status = status -- luacheck: ignore ngx
  -- the endpoints' shared header tables without a loop, which LuaJIT does
  -- not compile into the request's trace
  local ctype = shared_content_type(h)
  if ctype then ngx.header["Content-Type"] = ctype else set_headers(h) end -- luacheck: ignore ngx
  ngx.header["Content-Length"] = out and #out or 0 -- luacheck: ignore ngx
  if out and #out > 0 then ngx.print(out) end -- luacheck: ignore ngx
  return ngx.exit(ngx.OK) -- luacheck: ignore ngx
end
local TOO_LARGE = { ["Content-Type"] = "text/plain; charset=utf-8" }

--- Serves one request with handler(method, query, headers, raw_body).
-- Endpoints made by wxhw.callback get the headers as a lazy_headers marker
-- and read them only on demand; any other handler gets the header table.
function M.serve(handler)
  -- a declared length over the endpoint's max_body: 413 without reading
  -- the body (a chunked one is read, bounded by client_max_body_size, and
  -- the endpoint answers 413)
  local limit = callback.max_body(handler)
  if limit and (tonumber(ngx.var.http_content_length) or 0) > limit then -- luacheck: ignore ngx
    callback.refused(handler, "body_too_large", 413)
    return respond(413, TOO_LARGE, "body larger than " .. limit .. " bytes")
  end
  local body = raw_body()
  if body == nil then
    ngx.status = 500 -- luacheck: ignore ngx
    ngx.say("request body unavailable") -- luacheck: ignore ngx
    return ngx.exit(500) -- luacheck: ignore ngx
  end
  local query = first_values(ngx.req.get_uri_args(100)) -- luacheck: ignore ngx
  local headers = callback.takes_lazy_headers(handler) and LAZY_HEADERS or request_headers()
  -- No pcall here: the endpoints catch their handlers' errors themselves
  -- (500, "handler failed"), and under LuaJIT a pcall frame under the whole
  -- push kept most of it from compiling (wxhw.callback.endpoint
  -- call_handler). What still raises is a bug, which OpenResty logs with its
  -- traceback and answers 500.
  local status, h, out = handler(ngx.req.get_method(), query, headers, body) -- luacheck: ignore ngx
  return respond(status, h, out)
end

-- Key + value bytes of a de-duplication entry: with lua_shared_dict's node
-- header (68 bytes on 64-bit in current lua-nginx-module; 128 leaves room
-- for another layout) it stays within one 512-byte slab chunk, which a
-- reply takes anyway, so padding the claim to it costs no memory and lets
-- the reply overwrite the claim in place.
M.ENTRY_BYTES = 512 - 128

--- Options for de-duplication inside nginx, with ngx.sleep so a duplicate
-- waits for its first copy. `where` is either
--   "dict_name"                       a lua_shared_dict (claims padded to
--                                     ENTRY_BYTES, see wxhw.callback.dedup)
--   { shm = path, entries = N[, value_bytes = n] }
--                                     a wxhw.kv.shm table every worker
--                                     maps (no padding: it has fixed slots)
-- The shm table is opened once per worker (lazily, so init_worker or the first
-- request; nothing needs to exist before the fork).
local shm_cache = {}
function M.dedup(where)
  if type(where) == "table" then
    local key = where.shm .. "|" .. tostring(where.entries) .. "|" .. tostring(where.value_bytes)
    local store = shm_cache[key]
    if not store then
      local err
      store, err = require("wxhw.kv").shm{ path = where.shm, entries = where.entries,
                                                   value_bytes = where.value_bytes or M.SHM_VALUE_BYTES }
      if not store then error("wxhw.callback.ngx.dedup: " .. tostring(err), 2) end
      shm_cache[key] = store
    end
    return { store = store, sleep = ngx.sleep } -- luacheck: ignore ngx
  end
  local store = require("wxhw.kv").ngx_shared(where)
  return { store = store, sleep = ngx.sleep, entry_bytes = M.ENTRY_BYTES } -- luacheck: ignore ngx
end

-- Longest stored reply of the shm store by default: a claim is 1 byte, a
-- reply "D" status, content type and body ("success", a JSON ack or a short
-- encrypted passive reply).
M.SHM_VALUE_BYTES = 512

return M
