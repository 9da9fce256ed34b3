-- The layers of lua/wxhw/ (docs/architecture.md): primitives < pipeline <
-- products < workflows. Every `require` between two families must go down
-- the layers, or sideways through the short list below; only the
-- primitives' façades reach the C core. Forwarding modules (one line,
-- `return require "..."`, kept one release for moved names) are exempt.
local LAYERS = {
  primitives = { "core", "errors", "json", "clock", "url", "xml", "crypto", "http", "media", "loop", "fileio", "owner" },
  pipeline = { "transport", "ratelimit", "replay", "redis", "kv", "client", "paginate", "token", "store" },
  products = { "msgcrypt", "mp", "wmpf", "wecom", "pay", "callback", "httpserver", "metrics" },
  workflows = { "call", "relay", "provision", "gateway", "cli", "emulator" },
}
local ORDER = { primitives = 1, pipeline = 2, products = 3, workflows = 4 }

-- Modules whose layer is not their family's: the metrics instruments wire
-- the registry to callbacks, clients, token managers and call sessions, so
-- they sit above everything they observe.
local MODULE_LAYER = { ["wxhw.metrics.instruments"] = "workflows" }

-- Sideways edges between families of one layer, each with its reason.
local SIDEWAYS = {
  -- the C core and the error value sit under every other primitive
  ["*>core"] = true, ["*>errors"] = true,
  ["url>json"] = "a JSON BigInt goes into a query as its digits",
  ["loop>clock"] = "timers", ["owner>clock"] = "the pid seam",
  ["media>crypto"] = "random SSRCs and sequence starts",
  ["client>transport"] = "the client sends through a transport",
  ["client>ratelimit"] = "the client paces its calls",
  ["client>replay"] = "idempotent retries are replay-protected",
  ["paginate>client"] = "pages are client calls",
  ["token>client"] = "token sources are API calls",
  ["token>redis"] = "the Redis token store", ["kv>redis"] = "the Redis kv store",
  ["ratelimit>redis"] = "the shared limiter", ["replay>redis"] = "the shared replay window",
  ["ratelimit>kv"] = "the shared limiter", ["replay>kv"] = "the shared replay window",
  ["callback>msgcrypt"] = "pushes are msgcrypt envelopes",
  ["wecom>msgcrypt"] = "WeCom callbacks are msgcrypt envelopes",
  ["wecom>callback"] = "wecom.callback builds on the callback endpoints",
  ["gateway>call"] = "the gateway runs the call supervisor",
  ["gateway>relay"] = "and the media relay",
  ["cli>provision"] = "wxhw provision", ["cli>emulator"] = "wxhw emulator",
  ["cli>call"] = "wxhw call-worker", ["cli>relay"] = "wxhw demo", ["cli>gateway"] = "wxhw gateway",
  ["call>relay"] = "a call's media legs run through the relay",
  ["gateway>metrics"] = "the gateway serves /metrics and instruments its endpoints",
  ["metrics>call"] = "wxhw.metrics.instruments counts call states (the only metrics module at this layer)",
}

-- Outside the primitives, only the one Lua module over each C class of the
-- stores may reach the core.
local CORE_FACADES = { ["wxhw.kv.shm"] = "kvshm", ["wxhw.token.store.shm"] = "tokenstore.shm",
                       ["wxhw.redis"] = "redis (hiredis)" }

local LAYER_OF = {}
for layer, fams in pairs(LAYERS) do for _, f in ipairs(fams) do LAYER_OF[f] = layer end end

local function family(mod) return mod:match("^wxhw%.([%w_]+)") end
local function layer_of(mod)
  return MODULE_LAYER[mod] or LAYER_OF[family(mod)]
end

local function lua_files()
  local p = assert(io.popen("find lua/wxhw -name '*.lua' | sort"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local function module_name(path)
  return (path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function forwarding(src)
  local code = src:gsub("%-%-[^\n]*", ""):gsub("%s+", " ")
  return code:match('^ ?return require ?%(? ?["\'][%w_.]+["\'] ?%)? ?$') ~= nil
    or code:match('^ ?return require ?%( ?["\'][%w_.]+["\'] ?%)%.[%w_]+ ?$') ~= nil
end

-- every edge: { from, to, file }
local function edges()
  local out = {}
  for _, path in ipairs(lua_files()) do
    local src = read(path)
    if not forwarding(src) then
      local from = module_name(path)
      -- code only: requires named in comments are not edges
      local code = src:gsub("%-%-%[%[.-%]%]", ""):gsub("%-%-[^\n]*", "")
      for dep in code:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
        out[#out + 1] = { from = from, to = dep, file = path }
      end
    end
  end
  return out
end

local function verdict(e)
  if e.from == "wxhw" then return nil end -- the lazy top-level façade over everything
  local ff, tf = family(e.from), family(e.to)
  if e.to == "wxhw.core" and LAYER_OF[ff] ~= "primitives" and not CORE_FACADES[e.from] then
    return "reaches wxhw.core outside a façade"
  end
  -- the top-level façade loads everything: only the CLI (the demo) uses the API as a user does
  if e.to == "wxhw" and ff ~= "cli" then return "requires the top-level façade (it loads everything)" end
  if not tf or not ff or ff == tf then return nil end
  local fl, tl = layer_of(e.from), layer_of(e.to)
  if not fl then return "module of no layer: " .. e.from end
  if not tl then return "requires a module of no layer: " .. e.to end
  if ORDER[tl] > ORDER[fl] then return ("goes up (%s -> %s)"):format(fl, tl) end
  if ORDER[tl] < ORDER[fl] then return nil end
  if SIDEWAYS["*>" .. tf] or SIDEWAYS[ff .. ">" .. tf] then return nil end
  return ("sideways within %s, not in the allowed list"):format(fl)
end

describe("the layers of lua/wxhw", function()
  it("sees the tree", function()
    local es = edges()
    assert.is_true(#es > 100, "found only " .. #es .. " require edges")
    local seen = {}
    for _, e in ipairs(es) do seen[e.from] = true end
    for _, m in ipairs{ "wxhw.client", "wxhw.callback", "wxhw.call", "wxhw.provision" } do
      assert.is_true(seen[m], m .. " not read")
    end
  end)

  it("has no edge up the layers or sideways outside the allowed list", function()
    local bad = {}
    for _, e in ipairs(edges()) do
      local why = verdict(e)
      if why then bad[#bad + 1] = ("%s -> %s (%s): %s"):format(e.from, e.to, e.file, why) end
    end
    assert(#bad == 0, #bad .. " edge(s) break the layers:\n  " .. table.concat(bad, "\n  "))
  end)

  it("catches an edge that goes up, one that goes sideways, and a reach into the core", function()
    assert.truthy(verdict{ from = "wxhw.callback.dedup", to = "wxhw.call.store" }:find("goes up"))
    assert.truthy(verdict{ from = "wxhw.mp", to = "wxhw.pay" }:find("sideways"))
    assert.truthy(verdict{ from = "wxhw.pay", to = "wxhw.core" }:find("wxhw.core"))
    assert.truthy(verdict{ from = "wxhw.pay", to = "wxhw" }:find("top%-level"))
    assert.is_nil(verdict{ from = "wxhw.callback.mp", to = "wxhw.json" })
    assert.is_true(forwarding('return require "wxhw.kv"\n'))
    assert.is_true(forwarding('-- moved\nreturn require("wxhw.redis").Cosocket\n'))
    assert.is_false(forwarding('local x = require "wxhw.kv"\nreturn x\n'))
  end)
end)
