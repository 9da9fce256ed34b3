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
local nginx = require "support.nginx"
local tls = require "support.tls"

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

return M
