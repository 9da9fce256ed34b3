-- wxhw.http's direct engine (HTTP/1.1 on CONNECT_ONLY connections, our own
-- response parser) against nginx and a scripted raw-socket server on loopback.
local http = require "wxhw.http"
local errors = require "wxhw.errors"
local cjson = require "cjson"
local http_server = require "support.http_server"
local client_mod = require "wxhw.client"
local nginx = require "support.nginx"
local socket = require "socket"

local fails = require("support.http_server").fails

-- the request head as a sorted list of header lines (names lower-cased)
local function header_set(head)
  local lines = {}
  for line in head:gmatch("([^\r\n]*)\r\n") do lines[#lines + 1] = line end
  local start = table.remove(lines, 1)
  local set = {}
  for _, l in ipairs(lines) do
    if l ~= "" then
      local n, v = l:match("^([^:]+):%s*(.-)%s*$")
      set[#set + 1] = n:lower() .. ": " .. v
    end
  end
  table.sort(set)
  return start, set
end

describe("wxhw.http direct engine #c", function()
  local srv, raw, client

  setup(function()
    srv = assert(http_server.start{ server_block = [[
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    location = /short_ka { keepalive_timeout 1s; content_by_lua_block { ngx.print(ngx.var.connection) } }
    location = /closing { keepalive_timeout 0; content_by_lua_block { ngx.print(ngx.var.connection) } }
    location = /nocontent { return 204; }
    location = /notmod { return 304; }
    location = /slowconn { content_by_lua_block { ngx.sleep(0.05); ngx.print(ngx.var.connection) } }
    location = /sink { content_by_lua_block { ngx.req.read_body(); ngx.print(#(ngx.req.get_body_data() or "")) } }
    location = /connreq { content_by_lua_block { ngx.print(ngx.var.connection, " ", ngx.var.connection_requests) } }
    ]] })
    raw = assert(http_server.raw{
      ["/echo_raw"] = { body = "{request}" },
      ["/chunked_ext"] = { send = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: {conn}\r\n\r\n",
        "5;name=val\r\nhel", "lo\r\n6 ; x=\"y\"\r\n world\r\n0;last\r\nX-Trailer: t\r\nOther: 2\r\n\r\n" }, delay = 0.02 },
      ["/continue"] = { send = {
        "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n", "HTTP/1.1 102 Processing\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: {conn}\r\n\r\nok" }, delay = 0.02 },
      ["/http10"] = { send = { "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n{conn}" } },
      ["/http10ka"] = { send = { "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n{conn}" } },
      ["/http10close"] = { send = { "HTTP/1.0 200 OK\r\n\r\nuntil the end" }, close = true },
      ["/closedelim"] = { send = { "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil ", "the end" }, delay = 0.02, close = true },
      ["/connclose"] = { send = { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n{conn}" } },
      ["/byebye"] = { body = "{conn}", close = true }, -- keep-alive response, then the server closes
      ["/conn"] = { body = "{conn}" },
      -- answers, then (idle) a 408 of its own and closes, as some servers do
      ["/then408"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{conn}",
        "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" }, delay = 0.2, close = true },
      ["/same_cl"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc" } },
      ["/ambiguous_cl"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" } },
      ["/te_and_cl"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" } },
      ["/te_gzip"] = { send = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx" }, close = true },
      ["/huge_chunk"] = { send = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n" } },
      ["/huge_head"] = { send = { "HTTP/1.1 200 OK\r\nX-Big: " .. string.rep("b", 70000) .. "\r\nContent-Length: 0\r\n\r\n" } },
      ["/lf_only"] = { send = { "HTTP/1.1 200 OK\nContent-Length: 2\nX-Lf: 1\n\nok" } },
      ["/bare_cr"] = { send = { "HTTP/1.1 200 OK\r\nX-Cr: a\rb\r\nContent-Length: 2\r\n\r\nok" } },
      ["/garbage"] = { send = { "ICY 200 OK\r\n\r\n" }, close = true },
      -- Content-Length is 1*DIGIT: empty is malformed, not absent (RFC 9110 8.6)
      ["/empty_cl"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nabc" }, close = true },
      ["/empty_cl_element"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\nabc" }, close = true },
      -- obsolete line folding: after a plain header, after Content-Length, in a trailer
      ["/obsfold"] = { send = { "HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\nContent-Length: 2\r\n\r\nok" } },
      ["/obsfold_cl"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\t5\r\n\r\nokxyz" } },
      ["/obsfold_trailer"] = { send = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n 2\r\n\r\n" } },
      ["/slowbody"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial" }, close = true, hold = 3 },
      ["/truncated"] = { send = { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort" }, close = true },
      ["/rst"] = { rst = true },
      ["/streamed"] = { send = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "3e8\r\n" .. string.rep("s", 1000) .. "\r\n", "3e8\r\n" .. string.rep("s", 1000) .. "\r\n", "0\r\n\r\n" } },
      -- answers before reading the body: keeps the connection (unread) or closes it
      ["/early_hold"] = { send = { "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n" },
        early = true, close = true, hold = 4 },
      ["/early_close"] = { send = { "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big\n" },
        early = true, close = true },
      -- half a response before the body is read, then silence
      ["/early_half"] = { send = { "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 100\r\n\r\npartial" },
        early = true, close = true, hold = 4 },
      ["/seen"] = { body = "{seen}" },
      ["*"] = { body = "default {conn}" },
    })
    client = http.new{ ca_file = srv.pki.ca_file, timeout = 5, user_agent = "direct-spec" }
  end)

  teardown(function()
    if client then client:close() end
    if raw then raw:stop() end
    if srv then srv:stop() end
  end)

  describe("requests", function()
    it("is the default engine and says so", function()
      assert.truthy(tostring(client):find("engine=auto", 1, true))
      local c = http.new{ engine = "curl" }
      assert.truthy(tostring(c):find("engine=curl", 1, true))
      c:close()
      assert.has_error(function() http.new{ engine = "fast" } end)
    end)

    it("writes the request libcurl writes (same header set), in its own order", function()
      local curl = http.new{ engine = "curl", user_agent = "direct-spec" }
      local shapes = {
        { url = raw.base_url .. "/echo_raw?q=1&r=a%20b" },
        { method = "POST", url = raw.base_url .. "/echo_raw", body = "abc" },
        { method = "POST", url = raw.base_url .. "/echo_raw" },
        { method = "DELETE", url = raw.base_url .. "/echo_raw", headers = { ["X-Many"] = { "1", "2" } } },
        { method = "PATCH", url = raw.base_url .. "/echo_raw", body = "{}", headers = { ["Content-Type"] = "application/json" } },
        { url = raw.base_url .. "/echo_raw", headers = { Host = "example.com", ["User-Agent"] = "mine", Accept = "text/plain",
          ["X-Empty"] = "", ["X-Gone"] = false } },
      }
      for i, req in ipairs(shapes) do
        local a = assert(client:request(req))
        local b = assert(curl:request(req))
        local sa, ha = header_set(a.body)
        local sb, hb = header_set(b.body)
        assert.equal(sb, sa, "shape " .. i)
        assert.same(hb, ha, "shape " .. i)
      end
      -- the direct engine's own order: Host, User-Agent, Accept
      local head = assert(client:request{ url = raw.base_url .. "/echo_raw" }).body
      assert.equal(("GET /echo_raw HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: direct-spec\r\nAccept: */*\r\n\r\n"):format(raw.port), head)
      -- libcurl puts the User-Agent (a custom header there) after Accept
      head = assert(curl:request{ url = raw.base_url .. "/echo_raw" }).body
      assert.truthy(head:find("Accept: */*\r\nUser-Agent: direct-spec\r\n", 1, true), head)
      curl:close()
    end)

    it("sends a PUT without a body with Content-Length: 0", function()
      local head = assert(client:request{ method = "PUT", url = raw.base_url .. "/echo_raw" }).body
      assert.truthy(head:find("\r\nContent-Length: 0\r\n", 1, true), head)
    end)

    it("sends bodies larger than a socket buffer in full", function()
      local body = string.rep("0123456789abcdef", 200000) -- 3.2 MB
      local r = assert(client:request{ method = "POST", url = srv.base_url .. "/echo", body = body,
        headers = { ["Content-Type"] = "text/plain" } })
      local e = cjson.decode(r.body)
      assert.equal(#body, #e.body)
      assert.equal(body, e.body)
    end)
  end)

  describe("connections", function()
    it("reuses one connection (nginx $connection) for sequential requests", function()
      local first = assert(client:request{ url = srv.base_url .. "/connreq" }).body
      local conn, n = first:match("^(%d+) (%d+)$")
      for i = 1, 5 do
        local c2, n2 = assert(client:request{ url = srv.base_url .. "/connreq" }).body:match("^(%d+) (%d+)$")
        assert.equal(conn, c2)
        assert.equal(tonumber(n) + i, tonumber(n2))
      end
      -- TLS too
      local a = assert(client:request{ url = srv.https_url .. "/conn" }).body
      assert.equal(a, assert(client:request{ url = srv.https_url .. "/conn" }).body)
      assert.not_equal(a, conn)
    end)

    it("a server-closed idle connection: the next request succeeds on a new one", function()
      local a = assert(client:request{ url = srv.base_url .. "/short_ka" }).body
      socket.sleep(1.4) -- past nginx's keepalive_timeout of 1 s
      local r = assert(client:request{ url = srv.base_url .. "/short_ka" })
      assert.equal(200, r.status)
      assert.not_equal(a, r.body)
    end)

    it("sends again once, on a fresh connection, when a reused one turns out closed (POST too)", function()
      local c = http.new{}
      local first = tonumber(assert(c:request{ url = raw.base_url .. "/byebye" }).body)
      -- the server closed that connection after answering; the client has not noticed yet
      local r = assert(c:request{ method = "POST", url = raw.base_url .. "/echo_raw", body = "once" })
      assert.truthy(r.body:find("^POST /echo_raw"), r.body)
      assert.equal(tostring(first + 1), assert(c:request{ url = raw.base_url .. "/conn" }).body)
      c:close()
    end)

    it("does not take what an idle connection received for the next response", function()
      local c = http.new{}
      local first = tonumber(assert(c:request{ url = raw.base_url .. "/then408" }).body)
      socket.sleep(0.5) -- the 408 arrives and the server closes
      local r = assert(c:request{ url = raw.base_url .. "/conn" })
      assert.equal(200, r.status)
      assert.equal(tostring(first + 1), r.body)
      c:close()
    end)

    it("does not reuse after Connection: close, HTTP/1.0 or a close-delimited body", function()
      local a = assert(client:request{ url = srv.base_url .. "/closing" })
      assert.equal("close", a.headers.connection)
      local b = assert(client:request{ url = srv.base_url .. "/closing" })
      assert.not_equal(a.body, b.body)
      -- the raw server keeps these connections open: only the client can tell
      local c = http.new{}
      local x = assert(c:request{ url = raw.base_url .. "/connclose" }).body
      local y = assert(c:request{ url = raw.base_url .. "/connclose" }).body
      assert.not_equal(x, y)
      local h1 = assert(c:request{ url = raw.base_url .. "/http10" })
      assert.equal("1.0", h1.http_version)
      assert.not_equal(h1.body, assert(c:request{ url = raw.base_url .. "/http10" }).body)
      -- HTTP/1.0 with keep-alive is reused
      local k = assert(c:request{ url = raw.base_url .. "/http10ka" }).body
      assert.equal(k, assert(c:request{ url = raw.base_url .. "/http10ka" }).body)
      -- close-delimited bodies read to the end
      local cd = assert(c:request{ url = raw.base_url .. "/closedelim" })
      assert.equal("until the end", cd.body)
      assert.equal("1", cd.headers["x-a"])
      local c10 = assert(c:request{ url = raw.base_url .. "/http10close" })
      assert.equal("until the end", c10.body)
      assert.equal("1.0", c10.http_version)
      c:close()
    end)

    it("honours max_idle", function()
      local c = http.new{ max_idle = 1 }
      local a = assert(c:request{ url = srv.base_url .. "/conn" }).body
      assert.equal(a, assert(c:request{ url = srv.base_url .. "/conn" }).body)
      socket.sleep(1.2)
      assert.not_equal(a, assert(c:request{ url = srv.base_url .. "/conn" }).body)
      c:close()
    end)

    it("keeps to max_connections in a batch wider than it", function()
      local c = http.new{ max_connections = 2 }
      local reqs = {}
      for i = 1, 12 do reqs[i] = { url = srv.base_url .. "/slowconn" } end
      local t0 = socket.gettime()
      local seen, n = {}, 0
      for _, r in ipairs(c:batch(reqs, { concurrency = 8 })) do
        assert.equal(200, r.status, tostring(r))
        if not seen[r.body] then seen[r.body], n = true, n + 1 end
      end
      local dt = socket.gettime() - t0
      assert.equal(2, n)
      assert.is_true(dt >= 0.28, "12 requests of 50 ms on 2 connections took " .. dt)
      c:close()
    end)
  end)

  describe("responses", function()
    it("reads chunked bodies with extensions and trailers, and stays in step", function()
      local r = assert(client:request{ url = raw.base_url .. "/chunked_ext" })
      assert.equal("hello world", r.body)
      assert.is_nil(r.headers["x-trailer"])
      assert.is_nil(r.headers.other)
      local again = assert(client:request{ url = raw.base_url .. "/chunked_ext" })
      assert.equal(r.headers["x-conn"], again.headers["x-conn"]) -- same connection
    end)

    it("has no body for HEAD, 204 and 304, and the connection stays in step", function()
      local h = assert(client:request{ method = "HEAD", url = srv.base_url .. "/big?n=1000" })
      assert.equal("", h.body)
      assert.equal("1000", h.headers["content-length"])
      assert.equal(204, assert(client:request{ url = srv.base_url .. "/nocontent" }).status)
      local nm = assert(client:request{ url = srv.base_url .. "/notmod" })
      assert.equal(304, nm.status)
      assert.equal("", nm.body)
      assert.equal("ok", assert(client:request{ url = srv.base_url .. "/ok" }).body)
    end)

    it("skips 1xx interim responses and their headers", function()
      local r = assert(client:request{ url = raw.base_url .. "/continue" })
      assert.equal(200, r.status)
      assert.equal("ok", r.body)
      assert.is_nil(r.headers["x-interim"])
      assert.truthy(r.headers["x-final"])
    end)

    it("accepts repeated equal Content-Length values and bare LF line ends, refuses ambiguous framing and obs-fold", function()
      assert.equal("abc", assert(client:request{ url = raw.base_url .. "/same_cl" }).body)
      local lf = assert(client:request{ url = raw.base_url .. "/lf_only" })
      assert.equal("ok", lf.body)
      assert.equal("1", lf.headers["x-lf"])
      for _, path in ipairs { "/bare_cr", "/ambiguous_cl", "/te_and_cl", "/te_gzip", "/huge_chunk", "/huge_head", "/garbage",
          "/obsfold", "/obsfold_cl", "/obsfold_trailer", "/empty_cl", "/empty_cl_element" } do
        local e = fails("protocol", client:request{ url = raw.base_url .. path })
        assert.is_false(e.retryable, path)
        assert.is_true(e.sent, path)
      end
      assert.equal("ok", assert(client:request{ url = srv.base_url .. "/ok" }).body)
    end)

    it("the curl engine reports a server's bad status line as protocol, not input/url", function()
      local curl = http.new{ engine = "curl", timeout = 5 }
      local e = fails("protocol", curl:request{ url = raw.base_url .. "/garbage" })
      assert.equal("http", e.kind)
      assert.is_false(e.retryable)
      -- a URL libcurl cannot take is still the caller's
      assert.equal("input", select(2, curl:request{ url = "http//missing-colon" }).kind)
      curl:close()
    end)

    it("max_body: by Content-Length before reading, and while streaming", function()
      fails("too_large", client:request{ url = srv.base_url .. "/big?n=5000", max_body = 4999 })
      fails("too_large", client:request{ url = raw.base_url .. "/streamed", max_body = 1500 })
      assert.equal(2000, #assert(client:request{ url = raw.base_url .. "/streamed", max_body = 2000 }).body)
      fails("too_large", client:request{ url = srv.base_url .. "/big?n=200000&chunked=1", max_body = 100000 })
    end)
  end)

  describe("early responses", function()
    local big = string.rep("x", 8 * 1024 * 1024)
    local function seen(path)
      return cjson.decode(assert(http.new{}:request{ url = raw.base_url .. "/seen" }).body)[path]
    end

    for _, engine in ipairs{ "auto", "curl" } do
      it("a 413 before the body is read, connection kept open: returned at once (engine " .. engine .. ")", function()
        local c = http.new{ engine = engine, timeout = 3, max_request_body = #big }
        assert(c:request{ url = raw.base_url .. "/conn" }) -- a reused connection, as in production
        local before = seen("/early_hold") or 0
        local t0 = socket.gettime()
        local r, e = c:request{ method = "POST", url = raw.base_url .. "/early_hold", body = big }
        local dt = socket.gettime() - t0
        assert.is_table(r, tostring(e))
        assert.equal(413, r.status)
        assert.equal("too big\n", r.body)
        assert.is_true(dt < 1.5, "took " .. dt)
        assert.equal(before + 1, seen("/early_hold"))
        -- the connection was out of step: the next request takes a fresh one and succeeds
        assert.equal(200, assert(c:request{ url = raw.base_url .. "/conn" }).status)
        c:close()
      end)

      it("a 413 and a close before the body is read: the 413, POST not repeated (engine " .. engine .. ")", function()
        local c = http.new{ engine = engine, timeout = 3, max_request_body = #big }
        assert(c:request{ url = raw.base_url .. "/conn" })
        local before = seen("/early_close") or 0
        local r, e = c:request{ method = "POST", url = raw.base_url .. "/early_close", body = big }
        assert.is_table(r, tostring(e))
        assert.equal(413, r.status)
        assert.equal(before + 1, seen("/early_close"))
        assert.equal(200, assert(c:request{ url = raw.base_url .. "/conn" }).status)
        c:close()
      end)
    end

    it("waits in epoll, not in a loop, while both directions are stuck", function()
      local c = http.new{ timeout = 1, max_request_body = #big }
      local cpu, t0 = os.clock(), socket.gettime()
      local e = fails("timeout", c:request{ method = "POST", url = raw.base_url .. "/early_half", body = big })
      local dt = socket.gettime() - t0
      assert.is_true(e.sent)
      assert.is_true(dt >= 0.9, "took " .. dt)
      assert.is_true(os.clock() - cpu < 0.5 * dt, ("%.3f s of CPU in %.3f s"):format(os.clock() - cpu, dt))
      c:close()
    end)

    it("sends a large body over TLS in full", function()
      local c = http.new{ ca_file = srv.pki.ca_file, timeout = 10, max_request_body = #big }
      assert(c:request{ url = srv.https_url .. "/ok" })
      local body = big:sub(1, 4 * 1024 * 1024)
      for _ = 1, 2 do -- a fresh connection, then a reused one
        local r = assert(c:request{ method = "POST", url = srv.https_url .. "/sink", body = body })
        assert.equal(200, r.status)
        assert.equal(tostring(#body), r.body)
      end
      c:close()
    end)

    it("a POST sent on a reused connection stays sent when the retry cannot connect", function()
      -- the server takes the POST, stops listening and drops the connection
      -- unanswered; the engine's fresh-connection retry is refused
      local rs = assert(http_server.raw{ ["/pay"] = { body = "paid", refuse = 0.25 },
        ["/seen"] = { body = "{seen}" }, ["*"] = { body = "{conn}" } })
      local function count()
        for _ = 1, 40 do -- until it listens again
          local r = http.new{}:request{ url = rs.base_url .. "/seen" }
          if r then return cjson.decode(r.body)["/pay"] or 0 end
          socket.sleep(0.05)
        end
        error("the raw server did not come back")
      end
      local ok, err = pcall(function()
        local errs = {}
        for _, engine in ipairs{ "auto", "curl" } do
          local c = http.new{ engine = engine, timeout = 3 }
          assert(c:request{ url = rs.base_url .. "/warm" })
          local before = count()
          local e = fails("connect", c:request{ method = "POST", url = rs.base_url .. "/pay", body = "charge=1" })
          assert.is_true(e.sent, engine)
          assert.is_true(e.retryable, engine)
          errs[engine] = e
          assert.equal(before + 1, count())
          c:close()
          -- the same through wxhw.client: a non-idempotent call that was sent is not repeated
          local wc = assert(client_mod.new{ transport = { engine = engine, timeout = 3 },
            base_urls = { mp = rs.base_url }, retry = { attempts = 3, base_delay = 0.6, max_delay = 0.6 },
            random = function() return 0.99 end })
          assert(wc:call{ product = "mp", path = "/warm", raw = true })
          before = count()
          local r, ce = wc:call{ product = "mp", method = "POST", path = "/pay", body = "charge=2", raw = true }
          assert.is_nil(r, engine)
          assert.is_true(ce.sent, engine)
          socket.sleep(0.7) -- a (wrong) retry would have landed by now
          assert.equal(before + 1, count(), engine)
          wc.transport:close()
        end
        assert.equal(errs.auto.sent, errs.curl.sent)
        assert.equal(errs.auto.retryable, errs.curl.retryable)
      end)
      rs:stop()
      assert(ok, err)
    end)
  end)

  describe("failures", function()
    it("timeout mid-body", function()
      local t0 = socket.gettime()
      local e = fails("timeout", client:request{ url = raw.base_url .. "/slowbody", timeout = 0.5 })
      local dt = socket.gettime() - t0
      assert.is_true(dt >= 0.45 and dt < 1.5, "took " .. dt)
      assert.truthy(e.message:find("timed out", 1, true), e.message)
      assert.is_true(e.retryable)
      assert.is_true(e.sent)
    end)

    it("reset before any response (nginx 444, a TCP reset), short bodies", function()
      local c = http.new{}
      local e = fails("reset", c:request{ url = srv.base_url .. "/reset" })
      assert.is_true(e.sent)
      assert.is_true(e.retryable)
      assert.is_string(e.detail)
      e = fails("reset", c:request{ url = raw.base_url .. "/rst" })
      assert.is_true(e.sent)
      e = fails("reset", c:request{ url = raw.base_url .. "/truncated" })
      assert.is_true(e.sent)
      c:close()
    end)

    it("connect and dns failures are not sent", function()
      local e = fails("connect", client:request{ url = "http://127.0.0.1:" .. nginx.dead_port() .. "/" })
      assert.is_false(e.sent)
      assert.is_number(e.curl_code)
      e = fails("dns", client:request{ url = "http://does-not-exist.invalid/", connect_timeout = 3 })
      assert.is_false(e.sent)
    end)

    it("TLS: the test CA is trusted when given, an untrusted server refused", function()
      assert.equal("ok", assert(client:request{ url = srv.https_url .. "/ok" }).body)
      local plain = http.new{}
      local e = fails("tls", plain:request{ url = srv.https_url .. "/ok" })
      assert.is_false(e.retryable)
      assert.is_false(e.sent)
      plain:close()
    end)
  end)

  describe("batch", function()
    it("mixes hosts, engines and failures; results in order; request() works afterwards", function()
      local c = http.new{ ca_file = srv.pki.ca_file, timeout = 3 }
      local dead = "http://127.0.0.1:" .. nginx.dead_port() .. "/"
      local reqs = {
        { url = srv.base_url .. "/echo?i=1" },
        { url = raw.base_url .. "/conn" },
        { url = srv.https_url .. "/ok" },
        { url = dead },
        { url = srv.base_url .. "/reset" },
        { url = raw.base_url .. "/slowbody", timeout = 0.3 },
        { url = "http://does-not-exist.invalid/" },
        { url = raw.base_url .. "/ambiguous_cl" },
        { url = srv.base_url .. "/chunked?n=3&size=10" },
        { url = "gopher://127.0.0.1/" },
        { url = srv.base_url .. "/echo?i=11", method = "POST", body = "eleven" },
      }
      local res = c:batch(reqs, { concurrency = 4 })
      assert.equal(#reqs, #res)
      assert.equal("1", cjson.decode(res[1].body).args.i)
      assert.truthy(tonumber(res[2].body))
      assert.equal("ok", res[3].body)
      assert.equal("connect", res[4].reason)
      assert.equal("reset", res[5].reason)
      assert.equal("timeout", res[6].reason)
      assert.equal("dns", res[7].reason)
      assert.equal("protocol", res[8].reason)
      assert.equal(30, #res[9].body)
      assert.equal("scheme", res[10].reason)
      assert.equal("eleven", cjson.decode(res[11].body).body)
      -- a batch where everything failed, then request()
      local bad = {}
      for i = 1, 6 do bad[i] = { url = i % 2 == 0 and dead or srv.base_url .. "/reset" } end
      for _, r in ipairs(c:batch(bad, { concurrency = 3 })) do assert.is_true(errors.is(r)) end
      assert.equal("ok", assert(c:request{ url = srv.base_url .. "/ok" }).body)
      c:close()
    end)

    it("a batch stopped by a Lua error leaves the client usable", function()
      local c = http.new{}
      local reqs = {}
      for i = 1, 6 do reqs[i] = { url = srv.base_url .. "/slow?s=0.2" } end
      reqs[5] = { url = 42 } -- raises when its turn comes, requests 3 and 4 in flight
      assert.has_error(function() c:batch(reqs, { concurrency = 2 }) end)
      assert.equal("ok", assert(c:request{ url = srv.base_url .. "/ok" }).body)
      reqs[5] = { url = srv.base_url .. "/ok" }
      for i, r in ipairs(c:batch(reqs, { concurrency = 8 })) do -- more slots than before
        assert.equal(i == 5 and "ok" or "slow", r.body, tostring(r))
      end
      assert.equal("ok", assert(c:request{ url = srv.base_url .. "/ok" }).body)
      c:close()
    end)

    it("runs requests concurrently on the direct engine", function()
      local key = "d" .. math.random(1e9)
      local reqs = {}
      for i = 1, 8 do reqs[i] = { url = srv.base_url .. "/inflight?s=0.2&key=" .. key } end
      local t0 = socket.gettime()
      for _, r in ipairs(client:batch(reqs, { concurrency = 4 })) do assert.equal(200, r.status) end
      local dt = socket.gettime() - t0
      assert.equal("4", assert(client:request{ url = srv.base_url .. "/max_inflight?key=" .. key }).body)
      assert.is_true(dt >= 0.38 and dt < 1.5, "two waves of 0.2 s took " .. dt)
    end)
  end)

  describe("proxy variables", function()
    -- the environment is read by a child process (Lua cannot set it)
    local function child(env, url)
      local lua = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
      local code = ([[local c = require("wxhw.http").new{ connect_timeout = 2 }
        local r, e = c:request{ url = %q }
        io.write(r and ("status " .. r.status .. " " .. r.body) or ("error " .. e.reason))]]):format(url)
      local p = io.popen(("env -u WXHW_SANITIZE %s %s -e %q 2>&1"):format(env, lua, code))
      local out = p:read("*a")
      p:close()
      return out
    end

    it("a proxy that applies sends the request through libcurl; no_proxy exempts", function()
      if os.getenv("WXHW_RUNTIME") == "valgrind" or os.getenv("WXHW_RUNTIME") == "asan" then return end
      local out = child("http_proxy=" .. srv.base_url, "http://example.invalid/connreq")
      assert.truthy(out:find("^status 200 %d+ %d+$"), out)
      out = child("http_proxy=" .. srv.base_url .. " no_proxy=.invalid", "http://example.invalid/connreq")
      assert.truthy(out:find("^error dns"), out)
    end)

    it("both engines use the variables as they were at wxhw.http.new()", function()
      -- changing the environment afterwards takes LuaJIT's FFI (setenv)
      if os.getenv("WXHW_RUNTIME") ~= "luajit" then return end
      local code = ([[local ffi = require "ffi"
        ffi.cdef "int setenv(const char *, const char *, int); int unsetenv(const char *);"
        local http = require "wxhw.http"
        local proxy = os.getenv("http_proxy")
        local a, b = http.new{ connect_timeout = 2 }, http.new{ engine = "curl", connect_timeout = 2 }
        if proxy then ffi.C.unsetenv("http_proxy") else ffi.C.setenv("http_proxy", %q, 1) end
        for _, c in ipairs{ a, b } do
          local r, e = c:request{ url = "http://example.invalid/connreq" }
          io.write(r and ("status " .. r.status) or ("error " .. e.reason), ";")
        end]]):format(srv.base_url)
      local function run(env)
        local p = io.popen(("env -u WXHW_SANITIZE %s luajit -e %q 2>&1"):format(env, code))
        local out = p:read("*a")
        p:close()
        return out
      end
      local out = run("-u http_proxy")
      assert.equal("error dns;error dns;", out)
      out = run("http_proxy=" .. srv.base_url)
      assert.equal("status 200;status 200;", out)
    end)
  end)
end)
