-- The ngx_shared token store (the default inside nginx): a worker killed
-- (-9) while it holds the refresh lease. The redis store recovers within 1 s
-- and the shm store at once (issue 14); before this fix the nginx dict kept
-- the dead worker's lease for the whole lease_ttl (30 s), and every worker
-- waiting for a token timed out meanwhile. nginx runs LuaJIT: once, in the
-- Lua 5.4 pass.
local nginx = require "support.nginx"
local socket = require "socket"

local function get(port, path)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(10)
  c:send("GET " .. path .. " HTTP/1.0\r\nHost: x\r\n\r\n")
  local buf = c:receive("*a") or ""
  c:close()
  return buf:match("\r\n\r\n(.*)$")
end

describe("ngx_shared token store: a lease holder killed -9 #nosan #lua54", function()
  it("another worker takes the lease over at once; a live holder keeps it", function()
    local srv = assert(nginx.start{
      workers = 2,
      http_block = "lua_shared_dict wxhw_tokens 1m;\n",
      server_block = [[
        location = /lease {
          content_by_lua_block {
            local st = assert(require("wxhw.store.ngx_shared").new())
            local id, holder, left = st:lease("K", 30)
            if id then
              ngx.shared.wxhw_tokens:set("holder_pid", ngx.worker.pid())
              ngx.say("got ", ngx.worker.pid())
            else
              ngx.say("busy ", tostring(holder), " ", tostring(left), " ", ngx.worker.pid())
            end
          }
        }
        location = /holder { content_by_lua_block { ngx.say(ngx.shared.wxhw_tokens:get("holder_pid")) } }
      ]],
    })
    local ok, err = pcall(function()
      assert.matches("^got ", get(srv.port, "/lease"))
      local holder = tonumber(get(srv.port, "/holder"))
      -- while the holder lives, nobody else gets the lease
      local seen_other = false
      for _ = 1, 20 do
        local r = get(srv.port, "/lease")
        assert.matches("^busy ", r)
        if tonumber(r:match("(%d+)%s*$")) ~= holder then seen_other = true end
      end
      assert.is_true(seen_other, "the other worker never answered")
      assert(os.execute("kill -9 " .. holder))
      -- the master starts a new worker; any worker now asks
      local t0, r = socket.gettime(), nil
      repeat
        r = get(srv.port, "/lease")
        if r and r:match("^got ") then break end
        socket.sleep(0.05)
      until socket.gettime() - t0 > 3
      assert.matches("^got ", r, "the dead worker's lease was kept")
      assert.is_true(socket.gettime() - t0 < 1)
      -- the one that took it over holds it now
      assert.matches("^busy ", get(srv.port, "/lease"))
    end)
    local log = srv:error_log()
    srv:stop()
    assert(ok, tostring(err) .. "\n" .. log)
  end)
end)
