-- wxhw.transport.http1, the cosocket HTTP/1.1 client: URL parsing here, wire
-- behaviour inside nginx against raw responses written with ngx.req.socket.
local http1 = require "wxhw.transport.http1"
local http = require "wxhw.http"
local nginx = require "support.nginx"
local client = require "wxhw.client"
local http_server = require "support.http_server"

describe("wxhw.transport.http1", function()
  describe("parse_url", function()
    it("splits scheme, host, port and target", function()
      assert.same({ "https", "api.weixin.qq.com", 443, "/cgi-bin/token?a=1" },
        { http1.parse_url("HTTPS://API.weixin.qq.com/cgi-bin/token?a=1#frag") })
      assert.same({ "http", "127.0.0.1", 8080, "/" }, { http1.parse_url("http://127.0.0.1:8080") })
      assert.same({ "http", "h", 80, "/?q=1" }, { http1.parse_url("http://h?q=1") })
      assert.same({ "http", "::1", 9000, "/x" }, { http1.parse_url("http://[::1]:9000/x") })
    end)

    it("refuses what it cannot send safely", function()
      local function reason(u) return select(2, http1.parse_url(u)).reason end
      assert.equal("url", reason("http//x"))
      assert.equal("scheme", reason("ftp://x/"))
      assert.equal("url", reason("http:///nohost"))
      assert.equal("url", reason("http://user:pw@host/"))
      assert.equal("url", reason("http://h/a b"))
      assert.equal("url", reason("http://h/a\r\nX: y"))
      assert.equal("url", reason("http://h:99999/"))
    end)

    it("refuses to run outside nginx", function()
      assert.has_error(function() http1.request{ url = "http://127.0.0.1/" } end)
    end)
  end)

  describe("on the wire (inside nginx)", function()
    local srv, probe, raw
    -- Raw responses: whatever bytes a case needs, then the connection closes.
    local RAW = {
      until_close = "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nbody until close",
      continue = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
      bad_status = "SMTP ready\r\n\r\n",
      bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      conflicting_length = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
      short_body = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
      http10 = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
      trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    }
    local function raw_locations()
      local out = {}
      for name, bytes in pairs(RAW) do
        out[#out + 1] = ([[
    location = /raw/%s {
      content_by_lua_block {
        local sock = ngx.req.socket(true)
        sock:send(%q)
      }
    }]]):format(name, bytes)
      end
      return table.concat(out, "\n")
    end

    setup(function()
      srv = assert(nginx.start{
        workers = 1,
        http_block = "keepalive_timeout 1s;",
        server_block = raw_locations() .. [[
    location = /conn { content_by_lua_block { ngx.print(ngx.var.connection) } }
    # a prefix, then one piece over and over (32 MB at most): lines and bodies without end
    location ~ ^/endless/(\w+)$ {
      content_by_lua_block {
        local chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        local shapes = {
          status = { "HTTP/1.1 200 ", "a" },
          header = { "HTTP/1.1 200 OK\r\nX-Endless: ", "a" },
          headers = { "HTTP/1.1 200 OK\r\n", "X-Many: y\r\n" },
          interim = { "", "HTTP/1.1 100 Continue\r\n\r\n" },
          chunk_line = { chunked .. "5;", "a" },
          trailer = { chunked .. "0\r\nX-Trailer: ", "a" },
          chunks = { chunked, "10\r\n" .. ("c"):rep(16) .. "\r\n" },
          until_close = { "HTTP/1.1 200 OK\r\n\r\n", "b" },
        }
        local which = ngx.var[1]
        local shape = shapes[which]
        local sock = ngx.req.socket(true)
        if not sock:send(shape[1]) then return end
        local piece = shape[2]:rep(math.ceil(65536 / #shape[2]))
        for _ = 1, 512 do
          if not sock:send(piece) then return end
        end
      }
    }
    # a response that comes one piece every 0.1 s, for 3 s
    location ~ ^/drip/(\w+)$ {
      content_by_lua_block {
        local body = ngx.var[1] == "body"
        local sock = ngx.req.socket(true)
        sock:send(body and "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n" or "HTTP/1.1 200 OK\r\n")
        for _ = 1, 30 do
          ngx.sleep(0.1)
          if not sock:send(body and "x" or "X-Drip: 1\r\n") then return end
        end
        if not body then sock:send("Content-Length: 0\r\n\r\n") end
      }
    }
    location = /run {
      content_by_lua_block {
        local http1 = require "wxhw.transport.http1"
        local base = "http://127.0.0.1:" .. ngx.var.server_port
        local function out(res, err)
          if res then return { status = res.status, body = res.body, headers = res.headers, v = res.http_version } end
          return { reason = err.reason, kind = err.kind, sent = err.sent }
        end
        local name, r = ngx.var.arg_name, {}
        if name == "stale" then
          -- the server drops idle keep-alive connections after 1 s; the
          -- pooled one must be replaced without the caller noticing
          local a = http1.request({ url = base .. "/conn" })
          ngx.sleep(1.3)
          local b, err = http1.request({ url = base .. "/conn" })
          r = { first = a.body, second = b and b.body, err = err and err.message }
        elseif name == "pools" then
          local a = http1.request({ url = base .. "/conn" }, { pool_size = 4 })
          local b = http1.request({ url = "http://localhost:" .. ngx.var.server_port .. "/conn" },
            { resolve = { localhost = "127.0.0.1" } })
          local c = http1.request({ url = base .. "/conn" })
          r = { a = a.body, b = b.body, c = c.body }
        elseif name == "bounded" then
          -- the outcome of ?path= with ?timeout= and ?max_body=, its time,
          -- and how far the worker's peak memory (VmHWM) rose meanwhile
          local function peak_kb()
            local f = assert(io.open("/proc/self/status"))
            local kb = tonumber(f:read("*a"):match("VmHWM:%s*(%d+)"))
            f:close()
            return kb
          end
          collectgarbage()
          local peak0 = peak_kb()
          ngx.update_time()
          local t0 = ngx.now()
          r = out(http1.request({ url = base .. ngx.var.arg_path, timeout = tonumber(ngx.var.arg_timeout) },
            { max_body = tonumber(ngx.var.arg_max_body) }))
          ngx.update_time()
          r.elapsed = ngx.now() - t0
          r.grew_kb = peak_kb() - peak0
        elseif name == "asks_close" then
          local a = http1.request({ url = ngx.var.arg_url, headers = { Connection = "close" } })
          local b = http1.request({ url = ngx.var.arg_url })
          r = { a = a and a.body, b = b and b.body }
        elseif name == "dns" then
          r = out(http1.request({ url = "http://no-such-host.invalid/" }))
        else
          r = out(http1.request({ url = base .. "/raw/" .. name, method = ngx.var.arg_method }))
        end
        ngx.say(require("cjson").encode(r))
      }
    }]],
      })
      probe = http.new{ timeout = 10 }
      -- keeps every connection open, whatever the request asks
      raw = assert(http_server.raw{ ["/conn"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{conn}" } } })
    end)
    teardown(function()
      probe:close()
      srv:stop()
      raw:stop()
    end)

    local function run(name, method)
      local res = assert(probe:request{ url = srv.base_url .. "/run?name=" .. name .. (method and ("&method=" .. method) or "") })
      assert.equal(200, res.status, res.body .. srv:error_log())
      return client.json_decode(res.body)
    end

    it("reads a body that ends when the server closes", function()
      local r = run("until_close")
      assert.equal("body until close", r.body)
      assert.equal("1", r.headers["x-a"])
    end)

    it("skips 1xx interim responses", function()
      local r = run("continue")
      assert.equal(201, r.status)
      assert.equal("ok", r.body)
    end)

    it("reads chunk extensions and trailers", function()
      assert.equal("abc", run("trailers").body)
    end)

    it("speaks to HTTP/1.0 servers", function()
      local r = run("http10")
      assert.equal("abc", r.body)
      assert.equal("1.0", r.v)
    end)

    it("reports protocol violations", function()
      assert.equal("protocol", run("bad_status").reason)
      assert.equal("protocol", run("bad_chunk").reason)
      assert.equal("protocol", run("conflicting_length").reason)
      local short = run("short_body")
      assert.equal("reset", short.reason)
      assert.is_true(short.sent)
    end)

    it("replaces a pooled connection the server closed while idle", function()
      local r = run("stale")
      assert.is_nil(r.err)
      assert.is_string(r.second)
      assert.not_equal(r.first, r.second)
    end)

    it("does not pool a connection its request asked the server to close (RFC 9112 9.6)", function()
      local r = run("asks_close&url=" .. raw.base_url .. "/conn")
      assert.equal("1", r.a)
      assert.equal("2", r.b)
    end)

    it("keys pools by host name, so two names on one address do not share", function()
      local r = run("pools")
      assert.equal(r.a, r.c)
      assert.not_equal(r.a, r.b)
    end)

    describe("keeps the C engine's bounds", function()
      local function bounded(path, timeout, max_body)
        return run("bounded&path=" .. path .. "&timeout=" .. timeout .. (max_body and ("&max_body=" .. max_body) or ""))
      end

      -- the limits of csrc/http1.c: 64 KB of head (status, headers, interim
      -- responses, trailers), 4 KB per chunk-size line
      for _, shape in ipairs { "status", "header", "headers", "interim", "chunk_line", "trailer" } do
        it("refuses an endless " .. shape .. " at once, in bounded memory", function()
          local r = bounded("/endless/" .. shape, 5)
          assert.equal("protocol", r.reason, r.detail)
          assert.is_true(r.elapsed < 1, "took " .. r.elapsed .. " s")
          assert.is_true(r.grew_kb < 16 * 1024, "the worker grew by " .. r.grew_kb .. " KB")
        end)
      end

      for _, shape in ipairs { "chunks", "until_close" } do
        it("stops an endless " .. shape .. " body at max_body", function()
          local r = bounded("/endless/" .. shape, 5, 100000)
          assert.equal("too_large", r.reason, r.detail)
          assert.is_true(r.elapsed < 1, "took " .. r.elapsed .. " s")
          assert.is_true(r.grew_kb < 16 * 1024, "the worker grew by " .. r.grew_kb .. " KB")
        end)
      end

      it("refuses a Content-Length beyond max_body before reading the body", function()
        local r = bounded("/raw/http10", 5, 2)
        assert.equal("too_large", r.reason)
      end)

      -- `timeout` is a deadline for the whole exchange: a server that keeps
      -- sending a little, slower than it should, does not extend it
      for _, part in ipairs { "body", "head" } do
        it("ends a slow-drip " .. part .. " at the timeout", function()
          local r = bounded("/drip/" .. part, 1)
          assert.equal("timeout", r.reason, r.detail)
          assert.is_true(r.elapsed >= 0.9 and r.elapsed < 1.6, "took " .. r.elapsed .. " s")
        end)
      end
    end)

    it("reports a name without a resolver as dns", function()
      local r = run("dns")
      assert.equal("dns", r.reason)
      assert.is_false(r.sent)
    end)
  end)
end)
