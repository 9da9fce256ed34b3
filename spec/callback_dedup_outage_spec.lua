-- De-duplication is a guard, not a gate (issue 14's "nothing lost" under
-- outages): when its store is down (Redis stopped) or full (a shm table
-- with every entry live), a push is still handled — at worst a copy runs the
-- handler again — instead of every push and its retransmissions answered
-- 500 "de-duplication store failed" and lost for the whole outage.
local cjson = require "cjson"
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local kv = require "wxhw.call.store"
local redis = require "support.redis"
local files = require "support.files"
local socket = require "socket"

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"

local function push(mc, id)
  local ts = tostring(os.time())
  local msg = { MsgType = "event", Event = "device_event", FromUserName = "o", CreateTime = os.time(), MsgId = id }
  local body, sig = mc:push_body(cjson.encode(msg), "mp_json", ts, "n" .. id, "gh_1")
  return { timestamp = ts, nonce = "n" .. id, encrypt_type = "aes", msg_signature = sig }, body
end

local function endpoint(store, retry_after)
  local runs, infos = 0, {}
  local ep = callback.mini_program{ token = TOKEN, encoding_aes_key = KEY, appid = APPID,
    dedup = { store = store, retry_after = retry_after },
    handlers = { device_event = function() runs = runs + 1; return true end },
    on_event = function(info) infos[#infos + 1] = info end }
  return ep, function() return runs end, infos
end

describe("de-duplication store unavailable", function()
  local mc
  setup(function() mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID }) end)

  it("a full shm table: the push is handled, and said to be unguarded", function()
    local path = files.fresh_path()
    finally(function() os.remove(path) end)
    local store = assert(kv.shm{ path = path, entries = 8, value_bytes = 200 })
    for i = 1, 64 do if not store:add("fill" .. i, "x", 600) then break end end
    local ep, runs, infos = endpoint(store)
    local q, body = push(mc, 7100000001)
    local status = ep("POST", q, {}, body)
    assert.equal(200, status)
    assert.equal(1, runs())
    assert.matches("full", tostring(infos[#infos].dedup_error))
    store:close()
  end)

  it("a Redis that stops answering costs one timeout, not one per push", function()
    local hole = assert(socket.bind("127.0.0.1", 0)) -- accepts (the kernel's backlog), never answers
    finally(function() hole:close() end)
    local _, port = hole:getsockname()
    local store = assert(kv.redis{ port = tonumber(port), timeout = 0.3 })
    local ep, runs = endpoint(store)
    local t0 = socket.gettime()
    for i = 1, 5 do
      local q, body = push(mc, 7100000030 + i)
      assert.equal(200, (ep("POST", q, {}, body)))
    end
    local took = socket.gettime() - t0
    assert.equal(5, runs())
    assert.is_true(took < 0.9, ("5 pushes took %.2f s"):format(took))
  end)

  it("Redis stopped: pushes are handled meanwhile; once it is back copies are recognised again", function()
    local r = redis.start()
    finally(function() r.stop() end)
    local store = assert(kv.redis{ port = r.port })
    local ep, runs = endpoint(store, 0.2)
    r.stop()
    for i = 1, 3 do
      local q, body = push(mc, 7100000010 + i)
      assert.equal(200, (ep("POST", q, {}, body)))
    end
    assert.equal(3, runs())
    r.restart()
    socket.sleep(0.3) -- past retry_after: the store is asked again
    local q, body = push(mc, 7100000020)
    assert.equal(200, (ep("POST", q, {}, body)))
    assert.equal(200, (ep("POST", q, {}, body)))
    assert.equal(4, runs()) -- the copy was answered from the store
  end)
end)
