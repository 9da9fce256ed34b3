-- wxhw.call in two nginx workers at once on one lua_shared_dict: pushes for
-- the same device (one call, the other BUSY), then a device hang-up racing
-- the answer on each of those calls (the hang-up always ends the call).
-- nginx always runs LuaJIT: once, in the Lua 5.4 pass.
local race = require "support.nginx_race"

local ROUNDS = 60

describe("wxhw.call in two nginx workers at once #nosan #lua54 #slow", function()
  local srv
  setup(function()
    srv = assert(race.start{
      http_block = "lua_shared_dict kv 4m;",
      prepare = [[
        local call = require "wxhw.call"
        local calls = call.new{ store = require("wxhw.call.store").ngx_shared("kv") }
        local function barrier(name)
          d:incr(name, 1, 0)
          -- spin without yielding (the workers are separate processes) so
          -- both leave within microseconds of each other
          local t0 = ngx.now()
          while d:get(name) < 2 do
            if ngx.now() - t0 > 5 then error("barrier " .. name) end
            ngx.update_time()
          end
        end
      ]],
      run = ([[
        local n = %d
        for i = 1, n do
          barrier("p" .. i)
          local rep = calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
            RoomId = "w" .. role .. "-" .. i, SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN" .. i,
            FromUserName = "o" }
          d:set("push" .. role .. "-" .. i, rep and rep.errcode or -99)
        end
        -- the call each device got: worker 0 hangs up as the device, worker 1 answers
        for i = 1, n do
          local room = ngx.shared.kv:get("dev:m:SN" .. i) -- read before either worker moves the call
          barrier("h" .. i)
          local e, err
          if role == 0 then e, err = calls:hangup(room, "device") else e, err = calls:worker_status(room, "TALKING") end
          d:set("op" .. role .. "-" .. i, e and e.state or tostring(err and err.message))
        end
        d:set("done" .. role, 1)
      ]]):format(ROUNDS),
      report = ([[
        if not (d:get("done0") and d:get("done1")) then return "nil" end
        local kv, cjson = ngx.shared.kv, require "cjson"
        local bad, answered = {}, 0
        for i = 1, %d do
          local c0, c1 = d:get("push0-" .. i), d:get("push1-" .. i)
          if c0 + c1 ~= 1 or c0 * c1 ~= 0 then bad[#bad + 1] = "push " .. i .. ": " .. c0 .. "," .. c1 end
          local won = c0 == 0 and "w0-" .. i or "w1-" .. i
          local lost = c0 == 0 and "w1-" .. i or "w0-" .. i
          local sw, sl = cjson.decode(kv:get("call:" .. won)), cjson.decode(kv:get("call:" .. lost))
          if sl.state ~= "BUSY" then bad[#bad + 1] = "loser " .. i .. " " .. sl.state end
          local h, a = d:get("op0-" .. i), d:get("op1-" .. i)
          if h ~= sw.state then bad[#bad + 1] = "hangup " .. i .. ": " .. h .. " stored " .. sw.state end
          if a == "TALKING" then
            answered = answered + 1
            if sw.state ~= "HANGUP_BY_CALLER" then bad[#bad + 1] = "answered " .. i .. " " .. sw.state end
          elseif sw.state ~= "CANCELED" then bad[#bad + 1] = "cancelled " .. i .. " " .. sw.state end
          if kv:get("dev:m:SN" .. i) then bad[#bad + 1] = "lock " .. i .. " held" end
        end
        if #kv:get_keys(0) == 0 then bad[#bad + 1] = "empty" end
        for _, k in ipairs(kv:get_keys(0)) do
          if k:sub(1, 4) == "act:" then bad[#bad + 1] = "left active " .. k end
        end
        return (#bad == 0 and "ok " or "bad ") .. answered .. " " .. table.concat(bad, "; ")
      ]]):format(ROUNDS),
    })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("one call per device, and every hang-up ends its call whether or not the answer came first", function()
    local line = race.report(srv, 20)
    assert.truthy(line:match("^ok "), line .. "\n" .. srv:error_log())
  end)
end)

-- A lua_shared_dict that fills up evicts its least recently used keys on set
-- and add. A talking call's device lock and session are written once and then
-- left alone, so they would be the first to go and the device admitted to a
-- second call; the ngx_shared store refuses instead (safe_set/safe_add).
describe("wxhw.call on a full lua_shared_dict #nosan #lua54", function()
  local http = require "socket.http"
  local nginx = require "support.nginx"
  local srv
  setup(function()
    srv = assert(nginx.start{
      http_block = "lua_shared_dict kv 64k;",
      server_block = [[
        location = /evict {
          content_by_lua_block {
            local calls = require("wxhw.call").new{ store = require("wxhw.call.store").ngx_shared("kv") }
            local function push(room)
              return calls:join_voip_room{ MsgType = "event", Event = "iot_voip_notify", Action = "join_voip_room",
                RoomId = room, SessionKey = "k", ServerToken = "t", ModelId = "m", Sn = "SN-E", FromUserName = "o" }
            end
            local first = push("evict-1").errcode
            calls:worker_status("evict-1", "TALKING")
            -- other traffic: calls being prepared (pend: keys, 120 s each)
            local refused = 0
            for i = 1, 3000 do
              if not calls:prepare_phone_call{ sn = "other" .. i, model_id = "m" } then refused = refused + 1 end
            end
            local s = calls:get("evict-1")
            ngx.say(first, " ", s and s.state or "gone", " ", ngx.shared.kv:get("dev:m:SN-E") or "unlocked", " ",
                    push("evict-2").errcode, " ", refused > 0)
          }
        }]],
    })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("keeps a live call's session and device lock when other keys fill the dict", function()
    local body, code = http.request(srv.base_url .. "/evict")
    assert.equal(200, code, tostring(body) .. srv:error_log())
    -- the second push finds the device busy; the new keys were refused instead
    assert.equal("0 TALKING evict-1 1 true", (body:gsub("%s+$", "")))
  end)
end)
