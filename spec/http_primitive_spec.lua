-- wxhw.http (C, libcurl) against a real nginx on loopback.
local http = require "wxhw.http"
local cjson = require "cjson"
local http_server = require "support.http_server"
local tls = require "support.tls"
local socket = require "socket"

-- every case runs with each engine: the default (the direct engine for plain
-- HTTP/1.1) and engine="curl" (the full libcurl path)
for _, engine in ipairs { "auto", "curl" } do
  describe("wxhw.http #c engine=" .. engine, function()
    local srv, client, other_ca
    local function new(o)
      o = o or {}
      o.engine = engine
      return http.new(o)
    end

    setup(function()
      srv = assert(http_server.start())
      client = new{ ca_file = srv.pki.ca_file, timeout = 5 }
      other_ca = assert(tls.generate{ cn = "someone else" })
    end)

    teardown(function()
      if client then client:close() end
      if srv then srv:stop() end
      if other_ca then other_ca:cleanup() end
    end)

    local function get(path, extra)
      local req = { url = srv.base_url .. path }
      for k, v in pairs(extra or {}) do req[k] = v end
      return client:request(req)
    end

    it("returns status, lower-cased headers and body", function()
      local r = assert(get("/json"))
      assert.equal(200, r.status)
      assert.equal("application/json", r.headers["content-type"])
      assert.is_nil(r.headers["Content-Type"])
      assert.truthy(r.body:find('"product_id":12345678901234567890', 1, true))
      assert.is_number(r.time)
    end)

    it("keeps repeated response headers, in order", function()
      local r = assert(get("/headers_twice"))
      assert.same({ "a", "b" }, r.headers["x-dup"])
    end)

    it("sends method, headers and body", function()
      local r = assert(client:request{
        method = "PUT", url = srv.base_url .. "/echo?a=1&b=x%20y",
        headers = { ["X-One"] = "1", ["X-Many"] = { "p", "q" }, ["Content-Type"] = "application/json" },
        body = '{"k":"v"}',
      })
      local e = cjson.decode(r.body)
      assert.equal("PUT", e.method)
      assert.equal('{"k":"v"}', e.body)
      assert.equal("1", e.headers["x-one"])
      assert.same({ "p", "q" }, e.headers["x-many"])
      assert.equal("x y", e.args.b)
      assert.is_nil(e.headers.expect)
    end)

    it("sends POST with and without a body, and HEAD without reading one", function()
      local e = cjson.decode(assert(client:request{ method = "POST", url = srv.base_url .. "/echo", body = "abc" }).body)
      assert.equal("POST", e.method)
      assert.equal("abc", e.body)
      e = cjson.decode(assert(client:request{ method = "POST", url = srv.base_url .. "/echo" }).body)
      assert.equal("POST", e.method)
      assert.equal("0", e.headers["content-length"])
      local h = assert(client:request{ method = "HEAD", url = srv.base_url .. "/big?n=1000" })
      assert.equal(200, h.status)
      assert.equal("", h.body)
      assert.equal("1000", h.headers["content-length"])
    end)

    it("carries nothing of one request into the next on the reused handle", function()
      local function echo(req)
        req.url = srv.base_url .. "/echo"
        return cjson.decode(assert(client:request(req)).body)
      end
      local e = echo{ method = "POST", body = "first", headers = { ["X-Only-Once"] = "1" } }
      assert.equal("first", e.body)
      e = echo{ method = "DELETE" }
      assert.equal("DELETE", e.method)
      assert.equal("", e.body)
      assert.is_nil(e.headers["x-only-once"])
      assert.equal(200, assert(client:request{ method = "HEAD", url = srv.base_url .. "/echo" }).status)
      e = echo{}
      assert.equal("GET", e.method)
      assert.equal("", e.body)
      local r = assert(client:request{ url = srv.base_url .. "/big?n=10" })
      assert.equal(10, #r.body) -- HEAD's no-body mode is gone
    end)

    it("reuses one connection for repeated requests to one host", function()
      local first = assert(get("/conn")).body
      for _ = 1, 5 do assert.equal(first, assert(get("/conn")).body) end
      -- a second client has its own pool: a different connection
      local c2 = new{}
      assert.not_equal(first, assert(c2:request{ url = srv.base_url .. "/conn" }).body)
      c2:close()
    end)

    it("reuses TLS connections too", function()
      local a = assert(client:request{ url = srv.https_url .. "/conn" }).body
      local b = assert(client:request{ url = srv.https_url .. "/conn" }).body
      assert.equal(a, b)
    end)

    it("reads chunked bodies", function()
      local r = assert(get("/chunked?n=4&size=1000"))
      assert.equal(4000, #r.body)
      assert.equal(string.rep("a", 1000) .. string.rep("b", 1000) .. string.rep("c", 1000) .. string.rep("d", 1000), r.body)
      assert.is_nil(r.headers["content-length"])
    end)

    it("passes non-2xx statuses through as responses", function()
      local r = assert(get("/status?code=429&retry_after=7&body=x"))
      assert.equal(429, r.status)
      assert.equal("7", r.headers["retry-after"])
      assert.equal(500, assert(get("/status?code=500")).status)
    end)

    describe("errors", function()
      local fails = require("support.http_server").fails

      it("connect: nothing listening; retryable and not sent", function()
        local e = fails("connect", client:request{ url = "http://127.0.0.1:" .. require("support.nginx").dead_port() .. "/" })
        assert.equal("http", e.kind)
        assert.is_true(e.retryable)
        assert.is_false(e.sent)
        assert.is_string(e.detail)
        assert.is_number(e.curl_code)
      end)

      it("dns: a name that cannot resolve", function()
        local e = fails("dns", client:request{ url = "http://does-not-exist.invalid/", connect_timeout = 3 })
        assert.is_false(e.sent)
      end)

      it("timeout: per request, with the detail kept", function()
        local t0 = socket.gettime()
        local e = fails("timeout", get("/slow?s=2", { timeout = 0.3 }))
        assert.is_true(socket.gettime() - t0 < 1.5)
        assert.is_true(e.retryable)
        assert.truthy(e.message:find("timed out", 1, true))
      end)

      it("reset: the server closes without answering; the request was sent", function()
        local e = fails("reset", get("/reset"))
        assert.is_true(e.sent)
        assert.is_true(e.retryable)
      end)

      it("too_large: by Content-Length and by streamed size", function()
        local small = new{ max_body = 1000 }
        fails("too_large", small:request{ url = srv.base_url .. "/big?n=5000" })
        local e = fails("too_large", small:request{ url = srv.base_url .. "/big?n=200000&chunked=1" })
        assert.is_false(e.retryable)
        assert.equal(1000, #assert(small:request{ url = srv.base_url .. "/big?n=1000" }).body)
        -- per request cap
        fails("too_large", get("/big?n=100", { max_body = 99 }))
        small:close()
      end)

      it("tls: an untrusted certificate fails unless its CA is given", function()
        local plain = new{}
        fails("tls", plain:request{ url = srv.https_url .. "/ok" })
        local wrong = new{ ca_file = other_ca.ca_file }
        local e = fails("tls", wrong:request{ url = srv.https_url .. "/ok" })
        assert.is_false(e.retryable)
        assert.equal("ok", assert(client:request{ url = srv.https_url .. "/ok" }).body)
        plain:close()
        wrong:close()
      end)

      it("input: bad URL, unsupported scheme, CR/LF in headers, bad method", function()
        local e = fails("url", client:request{ url = "http//missing-colon" })
        assert.equal("input", e.kind)
        e = fails("scheme", client:request{ url = "ftp://127.0.0.1/x" })
        assert.equal("input", e.kind)
        fails("scheme", client:request{ url = "file:///etc/passwd" })
        e = fails("header", client:request{ url = srv.base_url .. "/echo", headers = { ["X-A"] = "v\r\nX-Injected: 1" } })
        assert.equal("input", e.kind)
        fails("header", client:request{ url = srv.base_url .. "/echo", headers = { ["X-A\nB"] = "v" } })
        fails("header", client:request{ url = srv.base_url .. "/echo", headers = { ["X-L"] = { "ok", "bad\n" } } })
        fails("method", client:request{ method = "GE T", url = srv.base_url .. "/echo" })
        local capped = new{ max_request_body = 10 }
        e = fails("too_large", capped:request{ method = "POST", url = srv.base_url .. "/echo", body = "01234567890" })
        assert.equal("input", e.kind)
        assert.equal(200, assert(capped:request{ method = "POST", url = srv.base_url .. "/echo", body = "0123456789" }).status)
        capped:close()
        -- the client is still fine afterwards
        assert.equal(200, assert(get("/ok")).status)
      end)

      it("protocol: a NUL byte inside a response header", function()
        local e = fails("protocol", get("/nul_header"))
        assert.is_false(e.retryable)
      end)

      it("raises on misuse", function()
        assert.has_error(function() client:request{} end)
        assert.has_error(function() client:request{ url = srv.base_url, body = {} } end)
        assert.has_error(function() client:request{ url = srv.base_url, timeout = -1 } end)
        assert.has_error(function() new{ timout = 3 } end)
        assert.has_error(function() new{ max_connections = "many" } end)
      end)

      it("refuses an unreadable ca_file", function()
        local c, e = new{ ca_file = "/nonexistent/ca.pem" }
        assert.is_nil(c)
        assert.equal("input", e.kind)
      end)
    end)

    describe("batch", function()
      it("returns results in request order, failures in place", function()
        local reqs = {}
        for i = 1, 12 do reqs[i] = { url = srv.base_url .. "/echo?i=" .. i } end
        reqs[5] = { url = srv.base_url .. "/reset" }
        reqs[7] = { url = "gopher://127.0.0.1/" }
        reqs[9] = { url = srv.base_url .. "/slow?s=0.3", method = "GET" }
        local res = client:batch(reqs, { concurrency = 4 })
        assert.equal(12, #res)
        for i = 1, 12 do
          if i == 5 then
            assert.equal("reset", res[i].reason)
          elseif i == 7 then
            assert.equal("scheme", res[i].reason)
          elseif i == 9 then
            assert.equal("slow", res[i].body)
          else
            assert.equal(tostring(i), cjson.decode(res[i].body).args.i)
          end
        end
      end)

      it("keeps at most `concurrency` requests in flight", function()
        local key = "b" .. math.random(1e9)
        local reqs = {}
        for i = 1, 9 do reqs[i] = { url = srv.base_url .. "/inflight?s=0.15&key=" .. key } end
        local t0 = socket.gettime()
        local res = client:batch(reqs, { concurrency = 3 })
        local dt = socket.gettime() - t0
        for i = 1, 9 do assert.equal(200, res[i].status) end
        assert.equal("3", assert(get("/max_inflight?key=" .. key)).body)
        assert.is_true(dt >= 0.4, "3 waves of 0.15 s took " .. dt)
      end)

      it("shares the connection pool with request()", function()
        local reqs = {}
        for i = 1, 6 do reqs[i] = { url = srv.base_url .. "/conn" } end
        local seen = {}
        for _, r in ipairs(client:batch(reqs, { concurrency = 2 })) do seen[r.body] = true end
        for _ = 1, 3 do assert.truthy(seen[assert(get("/conn")).body]) end
      end)

      it("handles empty lists and rejects bad arguments", function()
        assert.same({}, client:batch({}))
        assert.has_error(function() client:batch({ "x" }) end)
        assert.has_error(function() client:batch({}, { concurrency = 0 }) end)
      end)
    end)

    describe("objects", function()
      it("print settings, never proxy credentials", function()
        local c = new{ proxy = "http://user:s3cret@127.0.0.1:3128", timeout = 2.5 }
        local s = tostring(c)
        assert.truthy(s:find("wxhw.Http", 1, true))
        assert.truthy(s:find("timeout=2.5", 1, true))
        assert.truthy(s:find("127.0.0.1:3128", 1, true))
        assert.is_nil(s:find("s3cret", 1, true))
        assert.is_nil(s:find("user", 1, true))
        c:close()
        assert.truthy(tostring(c):find("closed", 1, true))
      end)

      it("raise after close; close twice is fine", function()
        local c = new{}
        c:close()
        c:close()
        assert.has_error(function() c:request{ url = srv.base_url .. "/ok" } end)
      end)

      it("speak HTTP/2 when asked and offered, multiplexing a batch on one connection", function()
        local h2srv = assert(http_server.start{ http2 = true })
        local c = new{ ca_file = h2srv.pki.ca_file, http2 = true }
        local r = assert(c:request{ url = h2srv.https_url .. "/conn" })
        assert.equal("2", r.http_version)
        local reqs = {}
        for i = 1, 8 do reqs[i] = { url = h2srv.https_url .. "/conn" } end
        for _, x in ipairs(c:batch(reqs, { concurrency = 8 })) do assert.equal(r.body, x.body) end
        local c1 = new{ ca_file = h2srv.pki.ca_file }
        local plain = assert(c1:request{ url = h2srv.https_url .. "/ok" })
        assert.equal("1.1", plain.http_version) -- http2 is opt-in
        c1:close()
        c:close()
        h2srv:stop()
      end)

      it("go through a proxy when given one", function()
        -- nginx is not a forward proxy, but curl must send the absolute URI to it
        local c = new{ proxy = srv.base_url }
        local r = assert(c:request{ url = "http://example.invalid/echo" })
        assert.equal("/echo", cjson.decode(r.body).uri:match("^[^?]*"))
        c:close()
      end)
    end)
  end)
end
