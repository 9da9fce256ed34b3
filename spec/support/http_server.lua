--- An nginx test server with the endpoints the HTTP, transport and client
-- specs talk to (plain and TLS), built on support.nginx and support.tls.
--
--   local http_server = require "support.http_server"
--   local srv = http_server.start{ workers = 1, server_block = "...", http_block = "..." }
--   srv.base_url, srv.https_url, srv.pki.ca_file, srv:stop()
--
-- Endpoints:
--   /ok                     200 "ok" (nginx `return`, for benches)
--   /json                   fixed JSON with integers beyond 2^53
--   /echo                   JSON: method, uri, args, headers, body, connection, connection_requests
--   /conn                   text: the nginx connection serial number
--   /slow?s=1               sleeps s seconds (non-blocking) then "slow"
--   /reset                  closes the connection without a response (nginx 444)
--   /chunked?n=5&size=1000  chunked body of n pieces
--   /status?code=429&retry_after=1&body=...   any status
--   /big?n=BYTES[&chunked=1]                  body of n bytes ("x")
--   /flaky?key=K&fail=N&code=500[&retry_after=S][&errcode=E]
--                           fails the first N calls for key K, then 200 JSON {"ok":true,"calls":n}
--   /calls?key=K            how many times /flaky (or /wx/*) saw key K
--   /inflight?key=K&s=0.2   counts requests in flight for K; /max_inflight?key=K the peak
--   /nul_header             a raw response with a NUL byte inside a header value
--   /headers_twice          response with a repeated header (x-dup: a, x-dup: b)
--
-- http_server.raw(routes) starts a scripted raw-socket HTTP/1 server (python3)
-- for responses nginx will not write (malformed, HTTP/1.0, odd framing):
--   local raw = http_server.raw{ ["/path"] = route, ["*"] = default_route }
--   raw.base_url, raw:stop()      (by pid; also when the Lua state closes)
-- route = { send = { "bytes", ... } } the response written piece by piece
--         (`delay` seconds between pieces), or { body = "..." } for a 200 with
--         Content-Length; "{conn}" becomes the connection's serial number
--         (1, 2, ...), "{req}" the request's number on it and "{request}"
--         the request head as received, "{seen}" a JSON object of how many
--         requests each path got so far. Afterwards the connection is kept
--         unless `close = true` (closed after `hold` seconds, if given) or
--         `rst = true` (reset at once, before any response).
--         `early = true`: answer right after the head, leaving the body
--         unread (use with close). `refuse = s`: a request to the path gets
--         no answer: the server stops listening (connects are refused),
--         drops the connection, and listens again s seconds later.
local nginx = require "support.nginx"
local tls = require "support.tls"
local socket = require "socket"

local M = {}

M.http_block = [[
  lua_shared_dict wxhw_test 4m;
]]

M.server_block = [=[
    location = /ok { return 200 "ok"; }
    location = /json {
      default_type application/json;
      return 200 '{"errcode":0,"errmsg":"ok","product_id":12345678901234567890,"msg_id":9007199254740993,"neg":-9223372036854775808,"small":42,"float":1.5}';
    }
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local cjson = require "cjson"
        ngx.header["Content-Type"] = "application/json"
        ngx.say(cjson.encode{
          method = ngx.req.get_method(), uri = ngx.var.request_uri, args = ngx.req.get_uri_args(),
          headers = ngx.req.get_headers(), body = ngx.req.get_body_data() or "",
          connection = tonumber(ngx.var.connection),
          connection_requests = tonumber(ngx.var.connection_requests),
        })
      }
    }
    location = /conn { content_by_lua_block { ngx.print(ngx.var.connection) } }
    location = /slow {
      content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s) or 1); ngx.print("slow") }
    }
    location = /reset { return 444; }
    location = /chunked {
      content_by_lua_block {
        local n, size = tonumber(ngx.var.arg_n) or 5, tonumber(ngx.var.arg_size) or 1000
        for i = 1, n do ngx.print(string.rep(string.char(96 + i), size)); ngx.flush(true) end
      }
    }
    location = /status {
      content_by_lua_block {
        ngx.status = tonumber(ngx.var.arg_code) or 200
        if ngx.var.arg_retry_after then ngx.header["Retry-After"] = ngx.unescape_uri(ngx.var.arg_retry_after) end
        ngx.header["Content-Type"] = "application/json"
        ngx.print(ngx.unescape_uri(ngx.var.arg_body or ""))
      }
    }
    location = /big {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n) or 0
        if not ngx.var.arg_chunked then ngx.header["Content-Length"] = n end
        local piece = string.rep("x", 65536)
        while n > 0 do
          local k = math.min(n, #piece)
          ngx.print(k == #piece and piece or piece:sub(1, k))
          n = n - k
          if ngx.var.arg_chunked then ngx.flush(true) end
        end
      }
    }
    location = /flaky {
      content_by_lua_block {
        local d = ngx.shared.wxhw_test
        local calls = d:incr("calls:" .. (ngx.var.arg_key or ""), 1, 0)
        ngx.header["Content-Type"] = "application/json"
        if calls <= (tonumber(ngx.var.arg_fail) or 0) then
          if ngx.var.arg_retry_after then ngx.header["Retry-After"] = ngx.unescape_uri(ngx.var.arg_retry_after) end
          if ngx.var.arg_reset then return ngx.exit(444) end
          ngx.status = tonumber(ngx.var.arg_code) or 500
          ngx.print('{"errcode":' .. (ngx.var.arg_errcode or "-1") .. ',"errmsg":"flaky"}')
          return
        end
        ngx.print('{"ok":true,"calls":' .. calls .. '}')
      }
    }
    location = /calls {
      content_by_lua_block { ngx.print(ngx.shared.wxhw_test:get("calls:" .. (ngx.var.arg_key or "")) or 0) }
    }
    location = /inflight {
      content_by_lua_block {
        local d, key = ngx.shared.wxhw_test, ngx.var.arg_key or ""
        local now = d:incr("inflight:" .. key, 1, 0)
        if now > (d:get("max:" .. key) or 0) then d:set("max:" .. key, now) end
        ngx.sleep(tonumber(ngx.var.arg_s) or 0.2)
        d:incr("inflight:" .. key, -1)
        ngx.print(now)
      }
    }
    location = /max_inflight {
      content_by_lua_block { ngx.print(ngx.shared.wxhw_test:get("max:" .. (ngx.var.arg_key or "")) or 0) }
    }
    location = /nul_header {
      content_by_lua_block {
        local sock = ngx.req.socket(true)
        sock:send("HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok")
      }
    }
    location = /headers_twice {
      content_by_lua_block { ngx.header["X-Dup"] = { "a", "b" }; ngx.print("dup") }
    }
]=]

--- Starts the server with TLS (a fresh CA) unless o.tls == false; o.http2
-- offers HTTP/2 on the TLS port.
function M.start(o)
  o = o or {}
  local pki
  if o.tls ~= false then
    local err
    pki, err = tls.generate()
    if not pki then return nil, err end
  end
  local srv, err = nginx.start{
    workers = o.workers or 1,
    http_block = M.http_block .. (o.http_block or ""),
    server_block = M.server_block .. (o.server_block or ""),
    main_block = o.main_block,
    lua_package_path = o.lua_package_path,
    tls = pki and { cert = pki.cert_file, key = pki.key_file, http2 = o.http2 } or nil,
    log_level = o.log_level,
  }
  if not srv then
    if pki then pki:cleanup() end
    return nil, err
  end
  srv.pki = pki
  local stop = srv.stop
  srv.stop = function()
    stop()
    if srv.pki then srv.pki:cleanup() end
  end
  return srv
end

local RAW_PY = [==[
import json, socket, struct, sys, threading, time
routes = json.load(open(sys.argv[1]))

def listen(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(128)
    return s

srv = listen(0)
port = srv.getsockname()[1]
print(port, flush=True)
lock = threading.Lock()
serial = [0]
seen = {}
pause = [0]

def fill(s, n, k, head):
    with lock:
        counts = json.dumps(seen, sort_keys=True)
    return (s.replace("{conn}", str(n)).replace("{req}", str(k)).replace("{request}", head)
            .replace("{seen}", counts))

def handle(c, n):
    buf, k = b"", 0
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1].split(b"?")[0].decode("latin-1")
            cl = 0
            for l in lines[1:]:
                if l.lower().startswith(b"content-length:"):
                    cl = int(l.split(b":", 1)[1])
            r = routes.get(path) or routes.get("*")
            with lock:
                seen[path] = seen.get(path, 0) + 1
            if r.get("early"):
                cl = 0
            while len(rest) < cl:
                d = c.recv(65536)
                if not d:
                    return
                rest += d
            buf = rest[cl:]
            k += 1
            if r.get("refuse"):
                pause[0] = r["refuse"]
                srv.shutdown(socket.SHUT_RDWR)  # accept() fails: listen again later
                return
            if r.get("rst"):
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            h = (head + b"\r\n\r\n").decode("latin-1")
            if "body" in r:
                body = fill(r["body"], n, k, h)
                parts = ["HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body.encode("latin-1")), body)]
            else:
                parts = [fill(p, n, k, h) for p in r["send"]]
            for i, p in enumerate(parts):
                if i and r.get("delay"):
                    time.sleep(r["delay"])
                c.sendall(p.encode("latin-1"))
            if r.get("close"):
                time.sleep(r.get("hold", 0))
                return
    except OSError:
        pass
    finally:
        c.close()

while True:
    try:
        c, _ = srv.accept()
    except OSError:
        srv.close()
        time.sleep(pause[0])
        srv = listen(port)
        continue
    with lock:
        serial[0] += 1
        n = serial[0]
    threading.Thread(target=handle, args=(c, n), daemon=True).start()
]==]

local raw_live = require("support.reaper").new() -- raw servers to stop when the Lua state closes
M._raw_live = raw_live

local Raw = {}
Raw.__index = Raw

function Raw:stop()
  if self.stopped then return end
  self.stopped = true
  raw_live[self] = nil
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  os.execute("rm -rf '" .. self.dir .. "'")
end

function M.raw(routes)
  local cjson = require "cjson"
  local p = io.popen("mktemp -d /tmp/wxhw-raw.XXXXXX")
  local dir = p:read("*l")
  p:close()
  local function write(name, s)
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    f:write(s)
    f:close()
  end
  write("server.py", RAW_PY)
  write("routes.json", cjson.encode(routes))
  p = io.popen(("python3 %s/server.py %s/routes.json >%s/port 2>%s/log & echo $!"):format(dir, dir, dir, dir))
  local pid = tonumber(p:read("*l"))
  p:close()
  local r = setmetatable({ pid = pid, dir = dir }, Raw)
  raw_live[r] = true
  for _ = 1, 100 do
    local f = io.open(dir .. "/port")
    local port = f and tonumber(f:read("*l") or "")
    if f then f:close() end
    if port then
      r.port = port
      r.base_url = "http://127.0.0.1:" .. port
      return r
    end
    socket.sleep(0.05)
  end
  r:stop()
  return nil, "the raw server did not start"
end

--- Asserts that a request failed with a wxhw.http error of `reason`
-- ("dns", "connect", "tls", "timeout", "reset", "too_large", "protocol",
-- "url" ...) and returns the error.
function M.fails(reason, r, e)
  local check = require "luassert" -- busted's assert lives in the spec files' environment only
  check.is_nil(r, "expected a failure, got a response")
  check.is_true(require("wxhw.errors").is(e), tostring(e))
  check.equal(reason, e.reason, tostring(e))
  return e
end

return M
