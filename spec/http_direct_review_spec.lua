-- spec/run: alone (descriptor counts and slow-server timings)
-- Adversarial review of wxhw.http's direct engine: a server that frames
-- responses wrongly, sends bytes after a response, drips its answer one byte
-- at a time, or ends a TLS connection without close_notify; bad input; fd
-- hygiene. A scripted python server (plain or TLS, TCP_NODELAY so a "later"
-- piece leaves at once) writes exact bytes; nginx is not needed.
local http = require "wxhw.http"
local tls = require "support.tls"
local socket = require "socket"

local fails = require("support.http_server").fails

-- Each connection reads requests in a loop and answers by path; "{conn}" is
-- the connection's serial number. A "then" piece goes out `gap` seconds
-- after the response, on the same connection, before the next request.
local SERVER_PY = [==[
import socket, ssl, sys, threading, time
mode, host = sys.argv[1], sys.argv[2]
ctx = None
if mode == "tls":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
lock = threading.Lock()
serial = [0]
drops = [0]
GAP = 0.01

def ok(body, extra=""):
    return "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)

CHUNKED = ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Conn: {conn}\r\n\r\n"
           "5;name=\"v\"\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n")

def routes(path, method, n):
    conn = str(n)
    if path == "/conn":
        return [ok(conn)], None, False
    if path == "/extra_response":  # a second, unasked-for response after the first
        return [ok("ok")], ok("evil"), False
    if path == "/long_body":  # more body than Content-Length said
        return [ok("ok")], "surplus", False
    if path == "/head_body":  # a body after a HEAD response
        return ["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"], "evil" if method == "HEAD" else None, False
    if path == "/nocontent_body":  # a body after a 204
        return ["HTTP/1.1 204 No Content\r\n\r\n"], ok("evil"), False
    if path == "/boundary":  # a response of exactly 16384 bytes, a surplus in the same write
        head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"
        body = "b" * (16384 - len(head % 16000))
        assert len(head % len(body)) + len(body) == 16384
        return [(head % len(body)) + body + ok("evil")], None, False
    if path == "/bytewise_chunked":
        return list(CHUNKED.replace("{conn}", conn)), None, False
    if path == "/bytewise_length":
        return list(ok("hello world", "X-Conn: %s\r\n" % conn)), None, False
    if path == "/slow":  # answers after 0.5 s
        return ["", ok("late")], None, False
    if path == "/pause":  # answers after 0.05 s
        return ["", ok(conn)], None, False
    if path == "/trailers":  # trailer fields that would shadow or add headers
        return ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                "2\r\nok\r\n0\r\nX-Trailer: t\r\nContent-Type: evil\r\n\r\n"], None, False
    if path == "/trailers_1xx":  # after an interim response, with an empty body
        return ["HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Final: 1\r\n\r\n0\r\nX-Trailer: t\r\n\r\n"], None, False
    if path == "/drop":  # takes the request, closes without a word
        with lock:
            drops[0] += 1
        return [], None, True
    if path == "/holddrop":  # takes the request, closes after 0.3 s without a word
        time.sleep(0.3)
        return [], None, True
    if path == "/drops":
        with lock:
            return [ok(str(drops[0]))], None, False
    if path == "/trunc":
        return ["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"], None, True
    if path == "/trunc_chunked":
        return ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nshort\r\n"], None, True
    return [ok("default " + conn)], None, False

def handle(c, n):
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(c, server_side=True) if ctx else c
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head, _, buf = buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n")[0].split(b" ")
            method, path = line[0].decode(), line[1].decode()
            pieces, later, abort = routes(path, method, n)
            for i, p in enumerate(pieces):
                if path in ("/slow", "/pause") and i:
                    time.sleep(0.5 if path == "/slow" else 0.05)
                elif len(pieces) > 2 and i:
                    time.sleep(0.002)
                if p:
                    s.sendall(p.encode("latin-1"))
            if later is not None:
                time.sleep(GAP)
                s.sendall(later.encode("latin-1"))
            if abort:  # the TCP connection ends, without a TLS close_notify
                c.shutdown(socket.SHUT_RDWR)
                return
    except (OSError, ssl.SSLError):
        pass
    finally:
        c.close()

while True:
    c, _ = srv.accept()
    with lock:
        serial[0] += 1
        n = serial[0]
    threading.Thread(target=handle, args=(c, n), daemon=True).start()
]==]

local live = require("support.reaper").new()

local Server = {}
Server.__index = Server
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  live[self] = nil
  os.execute("kill " .. self.pid .. " 2>/dev/null")
end

local function pid_of_self()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("*l"):match("^(%d+)")
  f:close()
  return pid
end

-- The process's open sockets by inode: a leaked socket is one not open
-- before, even when it reuses the number of a descriptor closed meanwhile.
local function open_sockets(pid)
  local p = io.popen("ls -l /proc/" .. pid .. "/fd")
  local set, n = {}, 0
  for line in p:lines() do
    local inode = line:match("%-> socket:%[(%d+)%]$")
    if inode then set[inode], n = true, n + 1 end
  end
  p:close()
  return set, n
end

local function new_in(after, before)
  local extra = {}
  for inode in pairs(after) do if not before[inode] then extra[#extra + 1] = inode end end
  return extra
end

describe("wxhw.http direct engine under review #c", function()
  local dir, pki, plain, secure, mismatch

  setup(function()
    local p = io.popen("mktemp -d /tmp/wxhw-review.XXXXXX")
    dir = p:read("*l")
    p:close()
    local f = assert(io.open(dir .. "/server.py", "wb"))
    f:write(SERVER_PY)
    f:close()
    pki = assert(tls.generate())
    -- stdout goes to a port file (start_server polls it)
    local function start(mode, host)
      local tag = mode .. host
      local cmd = ("python3 %s/server.py %s %s %s %s >%s/port.%s 2>%s/log.%s & echo $!"):format(dir, mode, host,
        pki.cert_file, pki.key_file, dir, tag, dir, tag)
      local pp = io.popen(cmd)
      local pid = tonumber(pp:read("*l"))
      pp:close()
      local s = setmetatable({ pid = pid }, Server)
      live[s] = true
      for _ = 1, 100 do
        local pf = io.open(("%s/port.%s"):format(dir, tag))
        local port = pf and tonumber(pf:read("*l") or "")
        if pf then pf:close() end
        if port then
          s.port = port
          s.url = ("%s://%s:%d"):format(mode == "tls" and "https" or "http", host, port)
          return s
        end
        socket.sleep(0.05)
      end
      s:stop()
      error("the scripted server did not start (" .. tag .. ")")
    end
    plain = start("plain", "127.0.0.1")
    secure = start("tls", "127.0.0.1")
    mismatch = start("tls", "127.0.0.2") -- the certificate names 127.0.0.1 and localhost only
  end)

  teardown(function()
    for _, s in ipairs { plain, secure, mismatch } do s:stop() end
    if pki then pki:cleanup() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  describe("bytes after a response (desync)", function()
    -- The surplus leaves the server 10 ms after the response; the next request
    -- goes 40 ms after the first returned, before the event loop ran again.
    -- It must not be read as that request's answer: the connection is out of
    -- step and must be dropped, the request sent on a fresh one.
    local function check(url, first)
      local c = http.new{ timeout = 3 }
      local conn1 = assert(c:request{ url = plain.url .. "/conn" }).body
      local r = assert(c:request(first))
      socket.sleep(0.04)
      local nxt = assert(c:request{ url = plain.url .. "/conn" })
      assert.equal(200, nxt.status)
      assert.not_equal("evil", nxt.body, url)
      assert.equal(tostring(tonumber(conn1) + 1), nxt.body, url)
      c:close()
      return r
    end

    it("a second, unasked-for response is not taken as the next answer", function()
      assert.equal("ok", check("/extra_response", { url = plain.url .. "/extra_response" }).body)
    end)

    it("a body longer than its Content-Length is not read into the next response", function()
      assert.equal("ok", check("/long_body", { url = plain.url .. "/long_body" }).body)
    end)

    it("a body after HEAD or after a 204 is not read into the next response", function()
      local h = check("/head_body", { method = "HEAD", url = plain.url .. "/head_body" })
      assert.equal("", h.body)
      assert.equal("4", h.headers["content-length"])
      assert.equal(204, check("/nocontent_body", { url = plain.url .. "/nocontent_body" }).status)
    end)

    it("a surplus right after a response that ends on a 16 KiB read boundary", function()
      local c = http.new{ timeout = 3 }
      assert(c:request{ url = plain.url .. "/conn" })
      for _ = 1, 3 do
        local r = assert(c:request{ url = plain.url .. "/boundary" })
        assert.equal(200, r.status)
        assert.truthy(r.body:match("^b+$"))
        local nxt = assert(c:request{ url = plain.url .. "/conn" })
        -- each /boundary spoils its connection: the next is a fresh one
        assert.not_equal("evil", nxt.body)
      end
      c:close()
    end)

    it("a well-framed server keeps its connection, idle or back to back, plain and TLS", function()
      local c = http.new{ timeout = 3, ca_file = pki.ca_file }
      for _, base in ipairs { plain.url, secure.url } do
        local a = assert(c:request{ url = base .. "/conn" }).body
        for _ = 1, 5 do assert.equal(a, assert(c:request{ url = base .. "/conn" }).body) end
        socket.sleep(0.06)
        assert.equal(a, assert(c:request{ url = base .. "/conn" }).body)
      end
      c:close()
    end)
  end)

  describe("framing split at every byte", function()
    it("chunked (extensions, a 1-byte chunk of a space, trailers) and Content-Length, one byte per write", function()
      local c = http.new{ timeout = 5, ca_file = pki.ca_file }
      for _, base in ipairs { plain.url, secure.url } do
        local r = assert(c:request{ url = base .. "/bytewise_chunked" })
        assert.equal("hello world", r.body)
        assert.is_nil(r.headers["x-trailer"])
        local l = assert(c:request{ url = base .. "/bytewise_length" })
        assert.equal("hello world", l.body)
        -- still in step: the same connection answers the next request
        assert.equal(r.headers["x-conn"], l.headers["x-conn"])
        assert.equal("default " .. l.headers["x-conn"], assert(c:request{ url = base .. "/x" }).body)
      end
      c:close()
    end)
  end)

  describe("trailers", function()
    it("are not merged into the response headers, by either engine", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ engine = engine }
        local r = assert(c:request{ url = plain.url .. "/trailers" })
        assert.equal("ok", r.body)
        assert.equal("text/plain", r.headers["content-type"], engine) -- a string, not { "text/plain", "evil" }
        assert.is_nil(r.headers["x-trailer"], engine)
        local i = assert(c:request{ url = plain.url .. "/trailers_1xx" })
        assert.equal("", i.body)
        assert.equal("1", i.headers["x-final"], engine)
        assert.is_nil(i.headers["x-interim"], engine)
        assert.is_nil(i.headers["x-trailer"], engine)
        c:close()
      end
    end)
  end)

  describe("timeouts", function()
    it("a server dripping one byte every 2 ms still hits the total timeout", function()
      local c = http.new{}
      local t0 = socket.gettime()
      -- /bytewise_chunked takes ~0.25 s one byte at a time: a 0.1 s timeout must win
      local e = fails("timeout", c:request{ url = plain.url .. "/bytewise_chunked", timeout = 0.1 })
      local dt = socket.gettime() - t0
      assert.is_true(dt >= 0.09 and dt < 1, "took " .. dt)
      assert.is_true(e.sent)
      c:close()
    end)

    it("a timeout below a millisecond still bounds the request (libcurl reads 0 ms as none), both engines", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ engine = engine }
        local t0 = socket.gettime()
        -- /slow answers after 0.5 s
        fails("timeout", c:request{ url = plain.url .. "/slow", timeout = 0.0005 })
        assert.is_true(socket.gettime() - t0 < 0.4, engine)
        c:close()
      end
    end)

    it("a connection that timed out is never reused: its late answer is not the next one's", function()
      local c = http.new{}
      local first = assert(c:request{ url = plain.url .. "/conn" }).body
      fails("timeout", c:request{ url = plain.url .. "/slow", timeout = 0.2 })
      socket.sleep(0.4) -- the late "late" response has arrived on the old connection by now
      local r = assert(c:request{ url = plain.url .. "/conn" })
      assert.not_equal(first, r.body)
      assert.not_equal("late", r.body)
      c:close()
    end)
  end)

  describe("TLS", function()
    it("a host name the certificate does not carry is refused, by both engines", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ ca_file = pki.ca_file, engine = engine }
        local e = fails("tls", c:request{ url = mismatch.url .. "/conn" })
        assert.truthy(e.detail:find("127.0.0.2", 1, true), e.detail)
        assert.is_false(e.sent)
        -- the same server under a name it carries (localhost) is fine
        assert.equal(200, assert(c:request{ url = "https://localhost:" .. secure.port .. "/conn" }).status)
        c:close()
      end
    end)

    it("a close without close_notify inside a Content-Length or chunked body is an error, not a short body", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ ca_file = pki.ca_file, engine = engine }
        for _, path in ipairs { "/trunc", "/trunc_chunked" } do
          local e = fails("reset", c:request{ url = secure.url .. path })
          assert.is_true(e.retryable)
          assert.is_true(e.sent)
        end
        c:close()
      end
    end)
  end)

  describe("bad input", function()
    it("a NUL byte in the URL is refused, not cut off (both engines)", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ engine = engine }
        local r, e = c:request{ url = plain.url .. "/conn\0/../x" }
        assert.is_nil(r, engine .. ": sent as " .. tostring(r and r.body))
        assert.equal("input", e.kind)
        assert.equal("url", e.reason)
        local res = c:batch{ { url = plain.url .. "/conn\0" }, { url = plain.url .. "/conn" } }
        assert.equal("url", res[1].reason)
        assert.equal(200, res[2].status)
        c:close()
      end
    end)

    it("CR, LF or NUL in the method, URL, header names and values are refused before any I/O", function()
      local c = http.new{}
      local function refused(req, reason)
        local r, e = c:request(req)
        assert.is_nil(r)
        assert.equal("input", e.kind, tostring(e))
        assert.equal(reason, e.reason, tostring(e))
      end
      refused({ url = plain.url .. "/a\r\nX-Injected: 1" }, "url")
      refused({ url = plain.url .. "/a b" }, "url")
      refused({ url = "http://127.0.0.1\r\nX: 1/" }, "url")
      refused({ method = "GET /x HTTP/1.1\r\nX:", url = plain.url .. "/" }, "method")
      refused({ method = "GE\0T", url = plain.url .. "/" }, "method")
      refused({ url = plain.url .. "/", headers = { ["X-A\r\nX-B"] = "1" } }, "header")
      refused({ url = plain.url .. "/", headers = { ["X-A\0"] = "1" } }, "header")
      refused({ url = plain.url .. "/", headers = { ["X-A"] = "1\r\nX-B: 2" } }, "header")
      refused({ url = plain.url .. "/", headers = { ["X-A"] = "1\0" } }, "header")
      refused({ url = plain.url .. "/", headers = { ["X-A"] = { "ok", "2\n" } } }, "header")
      c:close()
      -- client options read as C strings
      for _, opt in ipairs { "user_agent", "proxy", "ca_file" } do
        local ok, err = pcall(http.new, { [opt] = "x\0y" })
        assert.is_false(ok, opt)
        assert.truthy(tostring(err):find("NUL", 1, true), tostring(err))
      end
    end)
  end)

  describe("retry", function()
    it("a reused connection that answers nothing is retried once, on a fresh one, never twice", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ engine = engine }
        local before = tonumber(assert(c:request{ url = plain.url .. "/drops" }).body)
        -- the pooled connection takes the POST and closes: stale to the client
        local e = fails("reset", c:request{ method = "POST", url = plain.url .. "/drop", body = "x=1" })
        assert.is_true(e.sent, engine)
        local after = tonumber(assert(c:request{ url = plain.url .. "/drops" }).body)
        assert.equal(before + 2, after, engine) -- the first try and one retry
        c:close()
      end
    end)

    it("the retry runs on what is left of the request's timeout, not a fresh one", function()
      for _, engine in ipairs { "auto", "curl" } do
        local c = http.new{ engine = engine }
        assert(c:request{ url = plain.url .. "/conn" })
        local t0 = socket.gettime()
        -- 0.3 s to a close on the reused connection, then the retry: 0.5 s in all
        local e = fails("timeout", c:request{ url = plain.url .. "/holddrop", timeout = 0.5 })
        local dt = socket.gettime() - t0
        assert.is_true(dt >= 0.45 and dt < 0.75, engine .. " took " .. dt)
        assert.is_true(e.sent)
        c:close()
      end
    end)
  end)

  describe("pool", function()
    it("max_connections holds across many origins in one batch, mixed with TLS, none starves", function()
      local c = http.new{ max_connections = 2, timeout = 5, ca_file = pki.ca_file }
      local origins = { plain.url, "http://localhost:" .. plain.port, secure.url, "https://localhost:" .. secure.port }
      local reqs = {}
      for i = 1, 16 do reqs[i] = { url = origins[(i % 4) + 1] .. "/pause" } end
      local t0 = socket.gettime()
      local res = c:batch(reqs, { concurrency = 8 })
      local dt = socket.gettime() - t0
      for i, r in ipairs(res) do assert.equal(200, r.status, i .. ": " .. tostring(r)) end
      -- 16 answers of 50 ms, at most 2 at a time
      assert.is_true(dt >= 0.38, "took " .. dt)
      c:close()
    end)
  end)

  describe("resource hygiene", function()
    it("no descriptor survives a loop of failing requests, batches and collected clients", function()
      local pid = pid_of_self()
      -- bound without listen and held: connects are refused for the whole run
      local dead = "http://127.0.0.1:" .. require("support.nginx").dead_port() .. "/"
      -- garbage of earlier tests may close its sockets during this one
      collectgarbage()
      collectgarbage()
      local before, n_before = open_sockets(pid)
      local c = http.new{ timeout = 0.3, ca_file = pki.ca_file }
      assert(c:request{ url = plain.url .. "/conn" })
      local urls = { plain.url .. "/trunc", plain.url .. "/slow", dead, mismatch.url .. "/conn",
        secure.url .. "/trunc_chunked", plain.url .. "/boundary", plain.url .. "/extra_response" }
      for _ = 1, 5 do
        for _, u in ipairs(urls) do c:request{ url = u, max_body = 100 } end
        local reqs = {}
        for i, u in ipairs(urls) do reqs[i] = { url = u } end
        c:batch(reqs, { concurrency = 4 })
        -- a client dropped with pooled connections and one stopped mid-batch by a Lua error
        local c2 = http.new{ timeout = 0.3 }
        assert(c2:request{ url = plain.url .. "/conn" })
        assert.is_false(pcall(c2.batch, c2, { { url = plain.url .. "/slow" }, { url = plain.url .. "/conn" }, { url = 5 } }))
        c2 = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
      end
      assert(c:request{ url = plain.url .. "/conn" })
      -- how many connections the batches left pooled depends on timing;
      -- after close() nothing of the client may remain
      c:close()
      collectgarbage()
      local after, n_after = open_sockets(pid)
      local extra = new_in(after, before)
      assert.equal(0, #extra, ("sockets %d before the client, %d after close(), new: %s"):format(
        n_before, n_after, table.concat(extra, " ")))
      assert.has_error(function() c:request{ url = plain.url .. "/conn" } end, "wxhw.Http: the client is closed")
      assert.has_error(function() c:batch{ { url = plain.url .. "/conn" } } end, "wxhw.Http: the client is closed")
      c:close() -- twice is fine
      assert.truthy(tostring(c):find("closed", 1, true))
    end)
  end)
end)
