-- spec/support/nginx.lua and tls.lua themselves: other specs build on them.
local nginx = require "support.nginx"
local tls = require "support.tls"
local http = require "wxhw.http"

local function alive(pid)
  local ok, how, code = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  if type(ok) == "number" then return ok == 0 end
  return ok == true and how == "exit" and code == 0
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("spec support", function()
  it("starts nginx with the lua module and wxhw on the path, and stops it by pid", function()
    local srv = assert(nginx.start{
      workers = 2,
      server_block = [[location = /v { content_by_lua_block { ngx.print(require("wxhw").version, " ", ngx.worker.count()) } }]],
    })
    assert.truthy(srv.base_url:match("^http://127%.0%.0%.1:%d+$"))
    assert.is_true(alive(srv.pid))
    assert.truthy(exists(srv.prefix .. "/nginx.conf"))
    local c = http.new{}
    local r = assert(c:request{ url = srv.base_url .. "/v" })
    assert.equal(require("wxhw").version .. " 2", r.body)
    c:close()
    srv.stop() -- without the colon, as a callback would
    assert.is_false(alive(srv.pid))
    assert.is_false(exists(srv.prefix .. "/nginx.conf"))
    srv:stop() -- idempotent
  end)

  it("stops a server whose workers never finish a graceful stop, leaving no worker behind", function()
    local srv = assert(nginx.start{
      workers = 2,
      http_block = "init_worker_by_lua_block { ngx.timer.at(0, function() while true do ngx.sleep(0) end end) }",
    })
    local f = assert(io.open(("/proc/%d/task/%d/children"):format(srv.pid, srv.pid)))
    local workers = {}
    for w in f:read("*a"):gmatch("%d+") do workers[#workers + 1] = w end
    f:close()
    assert.equal(2, #workers) -- start() returns once they run
    srv:stop()
    local function running(w) -- neither gone nor a zombie
      local st = io.open("/proc/" .. w .. "/stat")
      if not st then return false end
      local s = st:read("*a")
      st:close()
      return not s:match("^%d+ %b() Z")
    end
    for _, w in ipairs(workers) do
      for _ = 1, 50 do
        if not running(w) then break end
        require("socket").sleep(0.02)
      end
      assert.is_false(running(w), "worker " .. w .. " still runs")
    end
  end)

  it("returns nginx's own words for a bad config", function()
    local srv, err = nginx.start{ server_block = "location / { no_such_directive on; }" }
    assert.is_nil(srv)
    assert.truthy(err:find("no_such_directive", 1, true), err)
  end)

  it("makes a CA and a server certificate the openssl CLI verifies", function()
    local pki = assert(tls.generate())
    local p = io.popen(("openssl verify -CAfile %s %s 2>&1"):format(pki.ca_file, pki.cert_file))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find(": OK", 1, true), out)
    local other = assert(tls.generate{ cn = "other" })
    p = io.popen(("openssl verify -CAfile %s %s 2>&1"):format(other.ca_file, pki.cert_file))
    out = p:read("*a")
    p:close()
    assert.is_nil(out:find(": OK", 1, true))
    pki:cleanup()
    other:cleanup()
    assert.is_false(exists(pki.ca_file or "/nonexistent"))
  end)
end)
