-- bench/gateway --stages: cost of each stage of a Mini Program push inside an
-- nginx worker (content_by_lua_file), as microseconds per push, best of 3
-- passes over N distinct pushes. Runs in one request: no network, no client.
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local crypto = require "wxhw.crypto"
local cjson = require "cjson.safe"
local mono = require("wxhw.clock").monotonic

local N = tonumber(ngx.var.arg_n) or 20000 -- luacheck: ignore ngx
local TOKEN, KEY, APPID = "benchtoken", ("K"):rep(43), "wxbench000000001"
local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
local ts = tostring(os.time())
local run_id = tostring(ngx.now()) -- luacheck: ignore ngx
local pushes, encs, cts = {}, {}, {}
for i = 1, N do
  local plain = cjson.encode({ ToUserName = "gh_b", FromUserName = "o" .. i, CreateTime = tonumber(ts),
    MsgType = "event", Event = "bench_event", MsgId = run_id .. "-" .. i, RoomId = "room" .. i })
  local nonce = tostring(100000 + i)
  local body, sig = mc:push_body(plain, "mp_json", ts, nonce, "gh_b")
  pushes[i] = { q = { timestamp = ts, nonce = nonce, encrypt_type = "aes", msg_signature = sig }, body = body,
                plain = plain }
  encs[i] = msgcrypt.envelope_encrypt(body)
  cts[i] = crypto.base64_decode(encs[i])
end

-- Best chunk of 1000 pushes over 3 passes: the least disturbed by other
-- jobs on a shared machine.
local CHUNK = 1000
-- printed at the end: the response headers are not sent before the header stage
local out = {}
local function stage(name, f)
  local best, bytes = math.huge, 0
  for pass = 1, 3 do
    collectgarbage()
    for c0 = 0, N - CHUNK, CHUNK do
      if pass == 1 and c0 == 0 then
        -- the first chunk, untimed: the bytes a push leaves for the collector
        collectgarbage("stop")
        local k0 = collectgarbage("count")
        for i = 1, CHUNK do f(pushes[i], i) end
        bytes = (collectgarbage("count") - k0) * 1024 / CHUNK
        collectgarbage("restart")
      else
        local t0 = mono()
        for i = c0 + 1, c0 + CHUNK do f(pushes[i], i) end
        best = math.min(best, mono() - t0)
      end
    end
  end
  out[#out + 1] = ("  %-50s %6.2f us %5.0f B garbage"):format(name, best / CHUNK * 1e6, bytes)
end

local REPLY = '{"errcode":0,"errmsg":"ok"}'
out[#out + 1] = ("stages of a push inside one nginx worker (%d distinct pushes, best chunk of 1000):"):format(N)
local AES = crypto.base64_decode(KEY .. "=")
local IV = AES:sub(1, 16)
stage("envelope: cjson.decode of the JSON body", function(p) cjson.decode(p.body) end)
stage("envelope: Encrypt out of the JSON body", function(p) msgcrypt.envelope_encrypt(p.body) end)
stage("msg_signature (sort + sha1 + hex)", function(p, i) mc:signature(p.q.timestamp, p.q.nonce, encs[i]) end)
stage("base64 decode", function(_, i) crypto.base64_decode(encs[i]) end)
stage("AES-256-CBC decrypt (crypto.aes_cbc_decrypt)", function(_, i) crypto.aes_cbc_decrypt(AES, IV, cts[i]) end)
stage("decrypt + unframe (b64, AES, padding, id)", function(_, i) mc:decrypt_unsigned(encs[i]) end)
stage("mc:open (all of the above)", function(p) mc:open(p.q, p.body) end)
stage("cjson.decode of the message", function(p) cjson.decode(p.plain) end)
local json = require "wxhw.json"
stage("wxhw.json.decode of the message (64-bit ids kept)", function(p) json.decode(p.plain) end)
stage("cjson.encode of the handler's reply", function() cjson.encode({ errcode = 0, errmsg = "ok" }) end)
stage("mc:reply (nonce, AES, b64, sign, JSON)", function() mc:reply(REPLY, "mp_json", ts) end)
local function handler(dedup)
  return callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID, dedup = dedup,
    handlers = { bench_event = function() return { errcode = 0, errmsg = "ok" } end } }
end
local h0 = handler(false)
stage("whole handler, no dedup store", function(p) assert(h0("POST", p.q, {}, p.body) == 200) end)
local dict = ngx.var.arg_dict -- luacheck: ignore ngx
if dict then
  -- fresh MsgIds for each pass, so every push is a new one for the store
  local fresh, pass = {}
  for k = 1, 3 do
    fresh[k] = {}
    for i = 1, N do
      local p = pushes[i]
      local plain = p.plain:gsub('"MsgId":"', '"MsgId":"' .. k .. "-")
      local body, sig = mc:push_body(plain, "mp_json", p.q.timestamp, p.q.nonce, "gh_b")
      fresh[k][i] = { q = { timestamp = ts, nonce = p.q.nonce, encrypt_type = "aes", msg_signature = sig }, body = body }
    end
  end
  -- the same stages on each de-duplication store: the lua_shared_dict and,
  -- when ?shm=path is given, the shm kv table (sized for every key here)
  local stores = { { name = "lua_shared_dict", where = dict } }
  local shm = ngx.var.arg_shm -- luacheck: ignore ngx
  if shm then stores[2] = { name = "shm", where = { shm = shm, entries = 6 * N + 16, value_bytes = 256 } } end
  for _, st in ipairs(stores) do
    pass = 0
    local dd = require("wxhw.callback.dedup").new(require("wxhw.callback.ngx").dedup(st.where))
    local reply = mc:reply(REPLY, "mp_json", ts)
    local k0 = 0
    stage(st.name .. ": claim + done of a new push", function(_, i)
      if i == 1 then k0 = k0 + 1 end
      local key = "stage:" .. k0 .. ":" .. i
      dd:claim(key); dd:done(key, 200, "application/json", reply)
    end)
    stage(st.name .. ": claim of a duplicate", function(_, i) dd:claim("stage:1:" .. i) end)
    local h1 = handler(require("wxhw.callback.ngx").dedup(st.where))
    stage("whole handler, " .. st.name .. " dedup", function(_, i)
      if i == 1 then pass = pass % 3 + 1 end
      local p = fresh[pass][i]
      assert(h1("POST", p.q, {}, p.body) == 200)
    end)
    stage("whole handler, duplicate from " .. st.name, function(_, i)
      local p = fresh[1][i]
      assert(h1("POST", p.q, {}, p.body) == 200)
    end)
  end
  -- the measured bench location with metrics on: shm dedup + wxhw.metrics
  if shm then
    local reg = require("wxhw.metrics").new{ backend = assert(require("wxhw.metrics").ngx_shared(ngx.var.arg_metrics)) } -- luacheck: ignore ngx
    local hmet = callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
      dedup = require("wxhw.callback.ngx").dedup{ shm = shm .. "-metrics", entries = 6 * N + 16, value_bytes = 256 },
      on_event = require("wxhw.metrics.instruments").new(reg).on_event,
      handlers = { bench_event = function() return { errcode = 0, errmsg = "ok" } end } }
    local qpass = 0
    if ngx.var.arg_profile then -- luacheck: ignore ngx
      -- `bench/gateway --stages` with PROFILE=<jit.p mode>: this handler under jit.p, to /tmp/wxhw-jitp.txt
      local prof = require("jit.p")
      prof.start(ngx.var.arg_profile, "/tmp/wxhw-jitp.txt") -- luacheck: ignore ngx
      for r = 1, 3 do for i = 1, N do local p = fresh[r][i]; hmet("POST", p.q, {}, p.body) end end
      prof.stop()
    end
    stage("whole handler, shm dedup, metrics on", function(_, i)
      if i == 1 then qpass = qpass % 3 + 1 end
      local p = fresh[qpass][i]
      assert(hmet("POST", p.q, {}, p.body) == 200)
    end)
    os.remove(shm .. "-metrics")
  end
  local hm, mpass = handler({ store = require("wxhw.kv").memory() }), 0
  stage("whole handler, in-process memory dedup", function(_, i)
    if i == 1 then mpass = mpass + 1 end
    local p = fresh[mpass][i]
    assert(hm("POST", p.q, {}, p.body) == 200)
  end)
end

-- the adapter's per-request work (wxhw.callback.ngx serve), on this request
stage("adapter: ngx.req.get_uri_args(100)", function() ngx.req.get_uri_args(100) end) -- luacheck: ignore ngx
stage("adapter: ngx.req.get_headers(100)", function() ngx.req.get_headers(100) end) -- luacheck: ignore ngx
stage("adapter: ngx.req.get_method()", function() ngx.req.get_method() end) -- luacheck: ignore ngx
stage("adapter: ngx.req.get_body_data()", function() ngx.req.get_body_data() end) -- luacheck: ignore ngx
stage("adapter: pcall of an empty function", function() pcall(type, 1) end)
stage("adapter: ngx.header Content-Type + Content-Length", function() -- luacheck: ignore ngx
  ngx.header["Content-Type"] = "application/json"; ngx.header["Content-Length"] = 210 -- luacheck: ignore ngx
end)
ngx.header["Content-Length"] = nil -- luacheck: ignore ngx
ngx.say(table.concat(out, "\n")) -- luacheck: ignore ngx
