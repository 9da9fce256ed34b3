-- wxhw.call.store.ngx_shared inside nginx: the kv interface the call layer
-- and the callback de-duplication rely on, and compare-and-set between
-- workers running at once. nginx always runs LuaJIT: once, in the Lua 5.4 pass.
local race = require "support.nginx_race"
local http = require "socket.http"

describe("call store on a lua_shared_dict #nosan #lua54", function()
  local srv
  setup(function()
    srv = assert(race.start{
      http_block = "lua_shared_dict kv 1m;",
      prepare = [[local s = require("wxhw.call.store").ngx_shared("kv")]],
      -- each worker adds 1 to "n" by compare-and-set, 20000 times and then
      -- on until it has lost a swap to the other (3 s at most): on a loaded
      -- machine one worker can otherwise finish before the other runs
      run = [[
        local won, lost, failed, i = 0, 0, 0, 0
        local t0 = ngx.now()
        while i < 20000 or (lost == 0 and ngx.now() - t0 < 3) do
          i = i + 1
          if i % 1000 == 0 then ngx.update_time() end
          while true do
            local v = s:get("n")
            local ok = s:cas("n", v, tostring(tonumber(v or "0") + 1))
            if ok then won = won + 1; break end
            if ok == nil then failed = failed + 1; break end
            lost = lost + 1
          end
        end
        d:set("won" .. role, won); d:set("lost" .. role, lost); d:set("failed" .. role, failed)
      ]],
      report = [[
        local kv = ngx.shared.kv
        return table.concat({ tostring(d:get("won0")), tostring(d:get("won1")), tostring(d:get("lost0")),
          tostring(d:get("lost1")), tostring(d:get("failed0")), tostring(d:get("failed1")), tostring(kv:get("n")) }, " ")
      ]],
      server_block = [[
        location = /interface {
          content_by_lua_block {
            local s = require("wxhw.call.store").ngx_shared("kv")
            local out = {}
            local function say(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
              out[#out + 1] = table.concat(t, ",") end
            say(s:set("a", "1"), s:get("a"), s:add("a", "2"), s:get("a"), s:add("b", "x\0y", 1))
            say(s:cas("a", "1", "3"), s:cas("a", "1", "4"), s:get("a"), s:cas("a", "3", nil), s:get("a"))
            say(s:cas("absent", nil, "new"), s:get("absent"))
            say(table.concat(s:keys("a"), "|"), #s:get("b"))
            -- a lock left by a worker that died holding it: the swap waits for its expiry, then fails
            ngx.shared.kv:set("\0lock:held", 1, 5)
            local t0 = ngx.now()
            local ok, err = s:cas("held", nil, "v")
            ngx.update_time()
            say(ok, err and err.kind, err and tostring(err):find("stayed locked", 1, true) ~= nil,
                ngx.now() - t0 >= 1, s:get("held"), ngx.shared.kv:get("\0lock:held"))
            ngx.sleep(1.1)
            say(s:get("b"))
            ngx.say(table.concat(out, "\n"))
          }
        }]],
    })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("gets, sets, adds, swaps, deletes, lists and expires", function()
    local body, code = http.request(srv.base_url .. "/interface")
    assert.equal(200, code, tostring(body) .. srv:error_log())
    local lines = {}
    for l in body:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.same({
      "true,1,false,1,true",
      "true,false,3,true,nil",
      "true,new",
      "absent,3", -- keys("a"): "a" is gone, "absent" matches the prefix
      "nil,store,true,true,nil,1",
      "nil",
    }, lines)
  end)

  it("compare-and-set between two workers at once loses no update", function()
    local line = race.report(srv)
    local w0, w1, l0, l1, f0, f1, n = line:match("^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+)")
    assert.is_truthy(w0, tostring(line) .. srv:error_log())
    assert.is_true(tonumber(w0) >= 20000 and tonumber(w1) >= 20000, line)
    assert.equal(0, tonumber(f0) + tonumber(f1), line)
    assert.equal(tonumber(w0) + tonumber(w1), tonumber(n), line) -- no update lost
    -- the workers really contended (each lost some swaps to the other)
    assert.is_true(tonumber(l0) + tonumber(l1) > 0, line)
  end)
end)
