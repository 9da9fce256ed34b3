-- The ngx_shared store inside nginx with 4 workers: one upstream fetch per
-- rotation while wrk hammers every worker (tokens via cosockets, no blocking).
local emulator = require "support.emulator"
local nginx = require "support.nginx"

local function wrk(url, seconds)
  local p = io.popen(string.format("wrk -t2 -c16 -d%ds %s 2>&1", seconds, url))
  local out = p:read("*a")
  p:close()
  local total = tonumber(out:match("(%d+) requests in"))
  local bad = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
  return total, bad, out
end

describe("token manager in nginx (ngx_shared store) #nosan", function()
  local e, srv
  setup(function()
    e = emulator.start{ seed = 9 }
    srv = assert(nginx.start{
      workers = 4,
      http_block = "lua_shared_dict wxhw_tokens 1m;\n",
      main_block = "",
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
            if not data then ngx.status = 500; ngx.say(tostring(err)); return end
            ngx.say(ngx.worker.pid())
          }
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
    -- every worker took part
    local pids = {}
    local socket = require "socket"
    local http = require "socket.http"
    for _ = 1, 40 do
      local body = http.request(srv.base_url .. "/call")
      if body then pids[body] = true end
    end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.is_true(n >= 2, "requests reached " .. n .. " worker(s)")
    assert.not_matches("%[error%]", srv:error_log())
    socket.sleep(0)
  end)
end)
