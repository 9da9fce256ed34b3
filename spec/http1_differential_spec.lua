-- The two HTTP/1 response parsers must agree: csrc/http1.c (wxhw.http's
-- direct engine) and lua/wxhw/transport/http1_response.lua (the cosocket
-- transport inside nginx). Generated responses (support.h1_gen: valid and
-- broken framing) go over real loopback sockets from one raw server to both;
-- each must give the same accept/reject (and failure class) and, when
-- accepted, the same status, version, headers and body.
-- Requests ask for Connection: close, so that neither side reuses a
-- connection the raw server is closing. WXHW_H1_DIFF_N (default 300) and WXHW_H1_DIFF_SEED choose the run;
-- fuzz/Makefile's `h1diff` target runs a longer one.
local http = require "wxhw.http"
local nginx = require "support.nginx"
local http_server = require "support.http_server"
local h1_gen = require "support.h1_gen"
local cjson = require "cjson"

local N = tonumber(os.getenv("WXHW_H1_DIFF_N")) or 300
local SEED = tonumber(os.getenv("WXHW_H1_DIFF_SEED")) or 20261207
local MAX_BODY = 200

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Failures compare by class; the wording may differ.
local function agree(c, l)
  if c.ok ~= l.ok then return false end
  if not c.ok then return c.reason == l.reason end
  return same(c, l)
end

describe("HTTP/1 response parsing #c: C engine and nginx transport", function()
  local raw, gw, probe
  local cases = {}

  setup(function()
    local gen = h1_gen.new(SEED)
    local routes = {}
    for i = 1, N do
      local bytes, method = gen:response()
      cases[i] = { path = "/d/" .. i, method = method, bytes = bytes }
      routes[cases[i].path] = { send = { bytes }, close = true }
    end
    raw = assert(http_server.raw(routes))
    gw = assert(nginx.start{
      workers = 1,
      http_block = "client_body_buffer_size 1m; client_max_body_size 1m;",
      server_block = [[
    location = /diff {
      content_by_lua_block {
        local cjson = require "cjson"
        local http1 = require "wxhw.transport.http1"
        local outcome = require("support.h1_gen").outcome
        ngx.req.read_body()
        local job = cjson.decode(ngx.req.get_body_data())
        local out = {}
        for i, c in ipairs(job.cases) do
          out[i] = outcome(http1.request({ url = job.base .. c.path, method = c.method, timeout = 5,
            headers = { Connection = "close" } },
            { max_body = job.max_body }))
        end
        ngx.say(cjson.encode(out))
      }
    }]],
    })
    probe = http.new{ timeout = 120 }
  end)

  teardown(function()
    if probe then probe:close() end
    if gw then gw:stop() end
    if raw then raw:stop() end
  end)

  it("give the same accept/reject and the same framing on " .. N .. " generated responses", function()
    local c_side = {}
    local client = http.new{ timeout = 5, max_body = MAX_BODY }
    for i, c in ipairs(cases) do
      c_side[i] = h1_gen.outcome(client:request{ url = raw.base_url .. c.path, method = c.method,
        headers = { Connection = "close" } })
    end
    client:close()
    local job = { base = raw.base_url, max_body = MAX_BODY, cases = {} }
    for i, c in ipairs(cases) do job.cases[i] = { path = c.path, method = c.method } end
    local res = assert(probe:request{ method = "POST", url = gw.base_url .. "/diff", body = cjson.encode(job) })
    assert.equal(200, res.status, res.body .. gw:error_log())
    local lua_side = cjson.decode(res.body)
    local bad, c_refused, lua_only = {}, 0, 0
    for i = 1, N do
      if not c_side[i].ok then
        c_refused = c_refused + 1
        if lua_side[i].ok then lua_only = lua_only + 1 end
      end
      if not agree(c_side[i], lua_side[i]) then bad[#bad + 1] = i end
    end
    local report = {}
    for k = 1, math.min(#bad, 5) do
      local i = bad[k]
      report[k] = ("%s %q\n  C:   %s\n  Lua: %s"):format(cases[i].method, cases[i].bytes,
        cjson.encode(c_side[i]), cjson.encode(lua_side[i]))
    end
    if os.getenv("WXHW_H1_DIFF_REPORT") then
      io.stderr:write(("h1 differential: seed %d, %d cases, %d disagree (%.1f %%); C refused %d, Lua accepted %d of those (%.1f %%)\n")
        :format(SEED, N, #bad, 100 * #bad / N, c_refused, lua_only, c_refused > 0 and 100 * lua_only / c_refused or 0))
    end
    assert.equal(0, #bad, ("%d of %d responses parsed differently (seed %d):\n%s"):format(#bad, N, SEED,
      table.concat(report, "\n")))
    -- the generator must reach both sides of every decision
    assert.is_true(c_refused > N / 10 and c_refused < N * 9 / 10, "refused " .. c_refused .. " of " .. N)
  end)

  -- as fuzz/http1_response.c asks of the C parser: where the bytes are cut
  -- never changes the meaning (here under this runtime, 5.4 or LuaJIT)
  it("the Lua parser reads the same whole or in pieces of any size", function()
    local read = require("wxhw.transport.http1_response").read
    local cuts = h1_gen.new(SEED + 1)
    local function parse(bytes, method, piece)
      local pos = 1
      local function fill()
        if pos > #bytes then return nil, "closed" end
        local n = piece and piece() or #bytes
        local s = bytes:sub(pos, pos + n - 1)
        pos = pos + n
        return s
      end
      local res, why, detail = read(fill, { head = method == "HEAD", max_body = MAX_BODY })
      if not res then return { why = why, detail = detail } end
      res.keep_alive = nil -- depends on what else came in the last piece
      return res
    end
    for i, c in ipairs(cases) do
      local whole = parse(c.bytes, c.method)
      local bytewise = parse(c.bytes, c.method, function() return 1 end)
      local random = parse(c.bytes, c.method, function() return cuts:int(1, 97) end)
      if whole.why and whole.why ~= "protocol" then -- the detail is how many bytes came
        whole.detail, bytewise.detail, random.detail = nil, nil, nil
      end
      assert.same(whole, bytewise, ("case %d: %q"):format(i, c.bytes))
      assert.same(whole, random, ("case %d: %q"):format(i, c.bytes))
    end
  end)
end)
