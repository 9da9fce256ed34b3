-- The ngx_shared store inside nginx with 4 workers: one upstream fetch per
-- rotation while wrk hammers every worker (tokens via cosockets, no blocking).
-- nginx always runs LuaJIT, so these run once (in the Lua 5.4 pass).
local emulator = require "support.emulator"
local nginx = require "support.nginx"
local redis = require "support.redis"

local function wrk(url, seconds)
  local p = io.popen(string.format("wrk -t2 -c16 -d%ds %s 2>&1", seconds, url))
  local out = p:read("*a")
  p:close()
  local total = tonumber(out:match("(%d+) requests in"))
  local bad = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
  return total, bad, out
end

describe("ngx_shared store outside nginx", function()
  it("refuses to load, saying where it works", function()
    assert.has_error(function() require("wxhw.store.ngx_shared").new() end,
                     "wxhw.store.ngx_shared: only inside nginx (lua-nginx-module)")
  end)
end)

describe("token manager in nginx (ngx_shared store) #nosan #lua54", function()
  local e, srv
  setup(function()
    e = emulator.start{ seed = 9 }
    srv = assert(nginx.start{
      workers = 4,
      http_block = "lua_shared_dict wxhw_tokens 1m;\nlua_shared_dict seen 100k;\n",
      server_block = string.format([[
        location = /call {
          content_by_lua_block {
            local w = package.loaded["spec.token_worker"]
            if not w then
              local token = require "wxhw.token"
              local client = require "wxhw.client"
              local mgr = assert(token.new{ source = "token", appid = "wxa000000000000001",
                secret = "a0000000000000000000000000000001", base_url = "%s" })
              assert(mgr.store_kind == "ngx_shared", mgr.store_kind)
              w = { mgr = mgr, c = assert(client.new{ base_urls = { mp = "%s" }, token_provider = mgr }) }
              package.loaded["spec.token_worker"] = w
            end
            local data, err = w.c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket", token = true,
                                        json = { sn = "SN" .. ngx.worker.pid(), model_id = "emuModelId000001" } }
            if not data then ngx.log(ngx.ERR, "call failed: ", tostring(err)); ngx.status = 500; ngx.say(tostring(err)); return end
            ngx.shared.seen:set(ngx.worker.pid(), true)
            ngx.say(ngx.worker.pid())
          }
        }
        location = /workers {
          content_by_lua_block { ngx.say(#ngx.shared.seen:get_keys(0)) }
        }]], e.base_url, e.base_url),
    })
  end)
  teardown(function()
    if srv then srv:stop() end
    if e then e.stop() end
  end)

  it("4 workers, 3 rotations: 3 fetches and no errors", function()
    local total = 0
    for round = 1, 3 do
      if round > 1 then e.control("/__emulator/clock", { advance = 7200 }) end
      local n, bad, out = wrk(srv.base_url .. "/call", 1)
      assert.is_number(n, out)
      assert.equal(0, bad, out .. srv:error_log())
      total = total + n
    end
    assert.is_true(total > 100)
    if os.getenv("WXHW_VERBOSE") then io.stderr:write("nginx calls: ", total, "\n") end
    local c = e.control("/__emulator/counters")
    assert.equal(3, c.token_fetches["token:wxa000000000000001"])
    -- the load reached several workers
    local http = require "socket.http"
    local n = tonumber((http.request(srv.base_url .. "/workers")))
    assert.is_true(n >= 2, "requests reached " .. tostring(n) .. " worker(s)")
    assert.not_matches("%[error%]", srv:error_log())
  end)
end)

-- Two nginx "hosts" (2 workers each), each with its own lua_shared_dict,
-- layered over one Redis: still one fetch per rotation.
describe("token manager in two nginx hosts (ngx_shared over Redis) #nosan #lua54", function()
  local e, r, hosts = nil, nil, {}
  setup(function()
    e = emulator.start{ seed = 11 }
    r = redis.start()
    for i = 1, 2 do
      hosts[i] = assert(nginx.start{
        workers = 2,
        http_block = "lua_shared_dict wxhw_tokens 1m;\nlua_shared_dict seen 100k;\n",
        server_block = string.format([[
          location = /call {
            content_by_lua_block {
              local w = package.loaded["spec.token_worker"]
              if not w then
                local token = require "wxhw.token"
                local client = require "wxhw.client"
                local mgr = assert(token.new{ source = "token", appid = "wxa000000000000001",
                  secret = "a0000000000000000000000000000001", base_url = "%s",
                  store = "ngx_shared", store_options = { redis = { port = %d } } })
                w = { mgr = mgr, c = assert(client.new{ base_urls = { mp = "%s" }, token_provider = mgr }) }
                package.loaded["spec.token_worker"] = w
              end
              local data, err = w.c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket", token = true,
                                          json = { sn = "SN" .. ngx.worker.pid(), model_id = "emuModelId000001" } }
              if not data then ngx.log(ngx.ERR, "call failed: ", tostring(err)); ngx.status = 500; ngx.say(tostring(err)); return end
            ngx.shared.seen:set(ngx.worker.pid(), true)
              ngx.say(ngx.worker.pid())
            }
          }
          location = /redis_direct {
            content_by_lua_block {
              local token = require "wxhw.token"
              local store = assert(token.store("redis", { port = %d }))
              local mgr = assert(token.new{ source = "token", appid = "wxa000000000000001",
                secret = "a0000000000000000000000000000001", base_url = "%s", store = store })
              local tok, err = mgr:token()
              ngx.say(tostring(store), " ", tok and "token" or tostring(err))
            }
          }]], e.base_url, r.port, e.base_url, r.port, e.base_url),
      })
    end
  end)
  teardown(function()
    for _, h in ipairs(hosts) do h:stop() end
    if r then r.stop() end
    if e then e.stop() end
  end)

  it("3 rotations under load on both hosts: 3 fetches, no errors", function()
    for round = 1, 3 do
      if round > 1 then e.control("/__emulator/clock", { advance = 7200 }) end
      -- both hosts under load at once
      local p1 = io.popen(string.format("wrk -t1 -c8 -d1s %s/call 2>&1", hosts[1].base_url))
      local n2, bad2, out2 = wrk(hosts[2].base_url .. "/call", 1)
      local out1 = p1:read("*a"); p1:close()
      local n1 = tonumber(out1:match("(%d+) requests in"))
      local bad1 = tonumber(out1:match("Non%-2xx or 3xx responses: (%d+)")) or 0
      assert.is_number(n1, out1)
      assert.is_number(n2, out2)
      assert.is_true(n1 > 0 and n2 > 0)
      assert.equal(0, bad1, out1 .. hosts[1]:error_log())
      assert.equal(0, bad2, out2 .. hosts[2]:error_log())
    end
    assert.equal(3, e.control("/__emulator/counters").token_fetches["token:wxa000000000000001"])
    local key = r.cli("KEYS", "wxhw:token:*")
    -- the emulator is not the platform: its tokens are keyed by its base URL too
    assert.matches("^wxhw:token:wxa000000000000001:%x+@%x+$", key)
    -- the plain redis store inside nginx talks over cosockets, never hiredis
    local body = require("socket.http").request(hosts[1].base_url .. "/redis_direct")
    assert.matches("^wxhw redis %(cosockets%) 127.0.0.1:%d+ token", body)
    assert.equal(3, e.control("/__emulator/counters").token_fetches["token:wxa000000000000001"])
  end)
end)

-- The store's records are several dict keys, read and written by workers
-- running at once on different cores. Worker 0 commits and invalidates
-- tokens T1, T2, ... as fast as it can; worker 1 reads and checks that
--   * an invalidated token never reads as valid again (a worker that saw
--     it fail would retry with it and fail the call), and
--   * a record is never older than the generation it carries (the
--     managers' cache trusts a token while the generation is unchanged).
describe("ngx_shared token store read by one worker while another writes #nosan #lua54", function()
  local race = require "support.nginx_race"
  local srv
  setup(function()
    srv = assert(race.start{
      prepare = [[
        local st = assert(require("wxhw.store.ngx_shared").new{ dict = "race" })
        local peek = st:peeker("k")
        if role == 0 then d:set("g0", peek()) end
      ]],
      run = [[
        local stop = ngx.now() + 1.5
        local n, resurrected, older, reads = 0, 0, 0, 0
        while ngx.now() < stop do
          for _ = 1, 200 do
            if role == 0 then
              n = n + 1
              st:commit("k", nil, "T" .. n, 1e12, 0)
              st:invalidate("k", "T" .. n)
              d:set("dead", n)
            else
              reads = reads + 1
              local dead = d:get("dead") or 0
              local r = st:get("k")
              local j = r.token and tonumber(r.token:sub(2))
              if j and j <= dead then resurrected = resurrected + 1 end
              -- gen g0 + 2i - 1 is T_i committed, g0 + 2i is T_i invalidated
              local at_gen = math.floor((r.gen - d:get("g0") + 1) / 2)
              if j and j < at_gen then older = older + 1 end
            end
          end
          ngx.update_time()
        end
        if role == 0 then d:set("writes", n)
        else d:set("reads", reads); d:set("resurrected", resurrected); d:set("older", older) end
      ]],
      report = [[
        return table.concat({ tostring(d:get("writes")), tostring(d:get("reads")), tostring(d:get("resurrected")),
                              tostring(d:get("older")) }, " ")
      ]],
    })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("never resurrects an invalidated token nor pairs a token with a later generation", function()
    local line = race.report(srv)
    local writes, reads, resurrected, older = line:match("^(%d+) (%d+) (%d+) (%d+)")
    assert.is_truthy(writes, line)
    -- both loops really ran side by side for the whole time
    assert.is_true(tonumber(writes) > 10000 and tonumber(reads) > 10000, line)
    assert.equal(0, tonumber(resurrected), line)
    assert.equal(0, tonumber(older), line)
  end)
end)
