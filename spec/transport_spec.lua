-- wxhw.transport: the same cases through libcurl (here) and through cosockets
-- inside a real nginx worker; plus proof that nginx workers never block.
local transport = require "wxhw.transport"
local http = require "wxhw.http"
local client = require "wxhw.client"
local cases = require "support.transport_cases"
local http_server = require "support.http_server"
local nginx = require "support.nginx"
local socket = require "socket"

local function lua_literal(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = ("[%q] = %q"):format(k, v) end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

describe("wxhw.transport", function()
  local upstream, untrusted, gateway, env, probe

  setup(function()
    upstream = assert(http_server.start())
    untrusted = assert(http_server.start())
    env = {
      base = upstream.base_url,
      https = "https://localhost:" .. upstream.ssl_port,
      untrusted = "https://localhost:" .. untrusted.ssl_port,
      dead = "http://127.0.0.1:" .. nginx.dead_port(),
    }
    local gw_block = ([[
    location = /case {
      content_by_lua_block {
        local cases = require "support.transport_cases"
        local t = require("wxhw.transport").new{ resolve = { localhost = "127.0.0.1" }, timeout = 5 }
        local ok, res = pcall(cases.run, ngx.var.arg_name, t, ENV)
        if not ok then ngx.status = 500; ngx.say(tostring(res)); return end
        ngx.header["Content-Type"] = "application/json"
        ngx.say(require("cjson").encode({ kind = t.kind, result = res }))
      }
    }
    location = /upstream_call {
      content_by_lua_block {
        local env = ENV
        local t = require("wxhw.transport").new{ kind = ngx.var.arg_kind }
        ngx.update_time()
        local t0 = ngx.now()
        local res, err = t:request{ url = env.base .. "/slow?s=1" }
        ngx.update_time()
        ngx.say(t.kind, " ", res and res.status or tostring(err), " ", ngx.now() - t0)
      }
    }
    ]]):gsub("ENV", lua_literal(env))
    gateway = assert(nginx.start{
      workers = 1,
      http_block = ("lua_ssl_trusted_certificate %s;\n  lua_ssl_verify_depth 3;\n"):format(upstream.pki.ca_file),
      server_block = gw_block,
    })
    probe = http.new{ timeout = 10 }
  end)

  teardown(function()
    if probe then probe:close() end
    for _, s in ipairs { gateway, upstream, untrusted } do s:stop() end
  end)

  it("picks libcurl outside nginx", function()
    assert.equal("curl", transport.default_kind())
    local t = transport.new{}
    assert.equal("curl", t.kind)
    assert.has_error(function() transport.new{ kind = "carrier-pigeon" } end)
  end)

  -- the libcurl transport with each engine of wxhw.http: the default (direct
  -- for plain HTTP/1.1) and engine="curl", the full libcurl path
  for _, engine in ipairs { "auto", "curl" } do
    describe("curl, engine=" .. engine, function()
      local t
      setup(function()
        t = assert(transport.new{ kind = "curl", ca_file = upstream.pki.ca_file, timeout = 5, engine = engine })
        assert.truthy(tostring(t.http):find("engine=" .. engine, 1, true))
      end)
      teardown(function() if t then t:close() end end)
      for _, name in ipairs(cases.order) do
        it(name, function()
          cases[name].check(cases.run(name, t, env))
        end)
      end
    end)
  end

  describe("ngx (inside an nginx worker)", function()
    for _, name in ipairs(cases.order) do
      it(name, function()
        local res = assert(probe:request{ url = gateway.base_url .. "/case?name=" .. name })
        assert.equal(200, res.status, res.body .. gateway:error_log())
        local out = client.json_decode(res.body)
        assert.equal("ngx", out.kind)
        cases[name].check(out.result)
      end)
    end
  end)

  describe("never blocks a worker", function()
    local function two_at_once(kind)
      local url = gateway.base_url .. "/upstream_call?kind=" .. kind
      local t0 = socket.gettime()
      local res = probe:batch({ { url = url }, { url = url } }, { concurrency = 2 })
      local dt = socket.gettime() - t0
      for i = 1, 2 do
        assert.equal(200, res[i].status, tostring(res[i]))
        assert.truthy(res[i].body:find("^" .. kind .. " 200 "), res[i].body)
      end
      return dt
    end

    it("one worker serves two 1-second upstream calls in about 1 second", function()
      local dt = two_at_once("ngx")
      -- one after the other they cannot take under 2 x 1 s; the margin below
      -- that is for a loaded machine (ASan, other specs), not for the proof
      assert.is_true(dt >= 0.95 and dt < 1.9, ("took %.2f s"):format(dt))
    end)

    it("(control) the blocking libcurl transport would take 2 seconds there", function()
      local dt = two_at_once("curl")
      assert.is_true(dt >= 1.9, ("took %.2f s"):format(dt))
    end)
  end)
end)
