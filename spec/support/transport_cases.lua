--- Transport behaviours written once and run against both transports: directly
-- with the libcurl transport, and inside nginx (content_by_lua) with the
-- cosocket transport. Each case's `run(t, env)` returns a plain, JSON-able
-- summary; `check(summary)` (busted side) asserts on it.
-- env = { base = "http://127.0.0.1:P", https = "https://localhost:Q",
--         untrusted = "https://localhost:R", dead = "http://127.0.0.1:S" }
local M = {}

-- checks run under busted: use luassert (modules do not see busted's global)
local has_luassert, luassert = pcall(require, "luassert")
local assert = has_luassert and luassert or assert

local function decode(s)
  return require("wxhw.client").json_decode(s)
end

local function outcome(res, err)
  if res then return { status = res.status, headers = res.headers, body = res.body, http_version = res.http_version } end
  return { error = { kind = err.kind, reason = err.reason, retryable = err.retryable, sent = err.sent, message = err.message } }
end

M.order = {}
local function case(name, run, check)
  M[name] = { run = run, check = check }
  M.order[#M.order + 1] = name
end

case("get_json", function(t, env)
  return outcome(t:request{ url = env.base .. "/json" })
end, function(r)
  assert.equal(200, r.status)
  assert.equal("application/json", r.headers["content-type"])
  assert.equal("12345678901234567890", decode(r.body).product_id)
end)

case("post_echo", function(t, env)
  local res, err = t:request{ method = "POST", url = env.base .. "/echo?a=1", body = '{"k":"v"}',
    headers = { ["Content-Type"] = "application/json", ["X-Many"] = { "p", "q" } } }
  if not res then return outcome(res, err) end
  return { echo = decode(res.body) }
end, function(r)
  assert.equal("POST", r.echo.method)
  assert.equal('{"k":"v"}', r.echo.body)
  assert.equal("1", r.echo.args.a)
  assert.same({ "p", "q" }, r.echo.headers["x-many"])
  assert.equal("9", r.echo.headers["content-length"])
end)

case("empty_post_and_head", function(t, env)
  local a = t:request{ method = "POST", url = env.base .. "/echo" }
  local h = t:request{ method = "HEAD", url = env.base .. "/big?n=1000" }
  local g = t:request{ url = env.base .. "/ok" } -- the connection is still in step after HEAD
  return { post = decode(a.body), head = outcome(h), after = g and g.body }
end, function(r)
  assert.equal("0", r.post.headers["content-length"])
  assert.equal(200, r.head.status)
  assert.equal("", r.head.body)
  assert.equal("ok", r.after)
end)

case("repeated_headers", function(t, env)
  return outcome(t:request{ url = env.base .. "/headers_twice" })
end, function(r)
  assert.same({ "a", "b" }, r.headers["x-dup"])
end)

case("keepalive", function(t, env)
  local seen = {}
  for i = 1, 4 do seen[i] = t:request{ url = env.base .. "/conn" }.body end
  local tls = {}
  for i = 1, 3 do
    local res, err = t:request{ url = env.https .. "/conn" }
    tls[i] = res and res.body or tostring(err)
  end
  return { conns = seen, tls = tls }
end, function(r)
  for i = 2, 4 do assert.equal(r.conns[1], r.conns[i]) end
  for i = 2, 3 do assert.equal(r.tls[1], r.tls[i]) end
  assert.truthy(tonumber(r.tls[1]), r.tls[1])
end)

case("chunked", function(t, env)
  local res, err = t:request{ url = env.base .. "/chunked?n=3&size=5000" }
  if not res then return outcome(res, err) end
  return { len = #res.body, first = res.body:sub(1, 1), last = res.body:sub(-1), te = res.headers["transfer-encoding"],
    mid = res.body:sub(5000, 5001) }
end, function(r)
  assert.equal(15000, r.len)
  assert.equal("a", r.first)
  assert.equal("c", r.last)
  assert.equal("ab", r.mid)
end)

case("too_large", function(t, env)
  return {
    by_length = outcome(t:request{ url = env.base .. "/big?n=5000", max_body = 1000 }),
    by_chunks = outcome(t:request{ url = env.base .. "/big?n=300000&chunked=1", max_body = 1000 }),
    fits = outcome(t:request{ url = env.base .. "/big?n=1000", max_body = 1000 }),
  }
end, function(r)
  assert.equal("too_large", r.by_length.error.reason)
  assert.equal("too_large", r.by_chunks.error.reason)
  assert.equal(1000, #r.fits.body)
end)

case("request_too_large", function(_, env)
  -- a transport of the same kind with a small request-body cap
  local t = require("wxhw.transport").new{ max_request_body = 100, resolve = { localhost = "127.0.0.1" } }
  return {
    big = outcome(t:request{ method = "POST", url = env.base .. "/echo", body = string.rep("x", 101) }),
    fits = outcome(t:request{ method = "POST", url = env.base .. "/echo", body = string.rep("x", 100) }),
  }
end, function(r)
  assert.equal("input", r.big.error.kind)
  assert.equal("too_large", r.big.error.reason)
  assert.equal(200, r.fits.status)
end)

case("status_429", function(t, env)
  return outcome(t:request{ url = env.base .. "/status?code=429&retry_after=3" })
end, function(r)
  assert.equal(429, r.status)
  assert.equal("3", r.headers["retry-after"])
end)

case("reset", function(t, env)
  return outcome(t:request{ url = env.base .. "/reset" })
end, function(r)
  assert.equal("reset", r.error.reason)
  assert.is_true(r.error.sent)
  assert.is_true(r.error.retryable)
end)

case("timeout", function(t, env)
  return outcome(t:request{ url = env.base .. "/slow?s=2", timeout = 0.3 })
end, function(r)
  assert.equal("timeout", r.error.reason)
  assert.is_true(r.error.retryable)
end)

case("connect_refused", function(t, env)
  return outcome(t:request{ url = env.dead .. "/" })
end, function(r)
  assert.equal("connect", r.error.reason)
  assert.is_false(r.error.sent)
end)

case("tls", function(t, env)
  local accepted = 0 -- verification must fail every time, not just usually
  for _ = 1, 20 do
    if t:request{ url = env.untrusted .. "/ok" } then accepted = accepted + 1 end
  end
  return { ok = outcome(t:request{ url = env.https .. "/ok" }), untrusted = outcome(t:request{ url = env.untrusted .. "/ok" }),
    accepted = accepted }
end, function(r)
  assert.equal(0, r.accepted)
  assert.equal("ok", r.ok.body)
  assert.equal("tls", r.untrusted.error.reason)
  assert.is_false(r.untrusted.error.retryable)
end)

case("bad_input", function(t, env)
  return {
    scheme = outcome(t:request{ url = "ftp://127.0.0.1/x" }),
    url = outcome(t:request{ url = "http//nope" }),
    crlf = outcome(t:request{ url = env.base .. "/echo", headers = { ["X-A"] = "v\r\nX-Injected: 1" } }),
    name = outcome(t:request{ url = env.base .. "/echo", headers = { ["X A"] = "v" } }),
    method = outcome(t:request{ method = "GE T", url = env.base .. "/echo" }),
    still_ok = outcome(t:request{ url = env.base .. "/ok" }),
  }
end, function(r)
  assert.equal("scheme", r.scheme.error.reason)
  assert.equal("url", r.url.error.reason)
  assert.equal("header", r.crlf.error.reason)
  assert.equal("header", r.name.error.reason)
  assert.equal("method", r.method.error.reason)
  for _, k in ipairs { "scheme", "url", "crlf", "name", "method" } do assert.equal("input", r[k].error.kind) end
  assert.equal("ok", r.still_ok.body)
end)

case("batch", function(t, env)
  local reqs = {}
  for i = 1, 8 do reqs[i] = { url = env.base .. "/echo?i=" .. i } end
  reqs[3] = { url = env.base .. "/reset" }
  reqs[6] = { url = "gopher://x/" }
  local out = {}
  for i, r in ipairs(t:batch(reqs, { concurrency = 3 })) do
    out[i] = r.status and decode(r.body).args.i or r.reason
  end
  local key = "batch" .. t.kind .. tostring(t.now()) .. tostring(math.random(1e9))
  local slow = {}
  for i = 1, 6 do slow[i] = { url = env.base .. "/inflight?s=0.1&key=" .. key } end
  t:batch(slow, { concurrency = 2 })
  local peak = t:request{ url = env.base .. "/max_inflight?key=" .. key }.body
  return { out = out, peak = peak }
end, function(r)
  assert.same({ "1", "2", "reset", "4", "5", "scheme", "7", "8" }, r.out)
  assert.equal("2", r.peak)
end)

case("client_pipeline", function(t, env)
  local client = require("wxhw.client")
  local c = client.new{ transport = t, base_urls = { mp = env.base }, retry = { base_delay = 0.01, max_delay = 0.02 } }
  local data = c:call{ product = "mp", path = "/json" }
  local key = "cp" .. t.kind .. tostring(t.now()) .. tostring(math.random(1e9))
  local flaky = c:call{ product = "mp", path = "/flaky", query = { key = key, fail = 1, code = 429, retry_after = 1 } }
  return { product_id = data.product_id, flaky_calls = flaky and flaky.calls }
end, function(r)
  assert.equal("12345678901234567890", r.product_id)
  assert.equal(2, r.flaky_calls)
end)

function M.run(name, t, env)
  return M[name].run(t, env)
end

return M
