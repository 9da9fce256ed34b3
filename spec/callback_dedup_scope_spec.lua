-- Two accounts, one de-duplication store: a push's explicit id (Mini
-- Program MsgId, WeCom base_info.req_id) is recognised only within the
-- endpoint's own account (appid, receive_id). Before, two Mini Programs
-- sharing a lua_shared_dict answered the second app's push with the first
-- app's reply whenever their MsgIds met, and its handler never ran.
local callback = require "wxhw.callback"
local msgcrypt = require "wxhw.msgcrypt"
local dedup = require "wxhw.callback.dedup"
local kv = require "wxhw.kv"
local cjson = require "cjson"

local TS = 1714112445

local function app(appid, key_char, store, seen)
  local o = { token = "tok" .. appid, encoding_aes_key = (key_char):rep(43), appid = appid,
              clock = function() return TS end, dedup = { store = store },
              handlers = { ev = function(msg) seen[#seen + 1] = appid .. ":" .. ("%d"):format(msg.MsgId)
                                              return { app = appid } end } }
  local mc = assert(msgcrypt.new{ token = o.token, encoding_aes_key = o.encoding_aes_key, receive_id = appid })
  local function push(msg_id, nonce)
    local plain = cjson.encode({ ToUserName = "gh_x", FromUserName = "o1", CreateTime = TS, MsgType = "event",
                                 Event = "ev", MsgId = msg_id })
    local body, sig = mc:push_body(plain, "mp_json", tostring(TS), nonce, "gh_x")
    return { timestamp = tostring(TS), nonce = nonce, encrypt_type = "aes", msg_signature = sig }, body
  end
  return callback.mini_program(o), push, mc
end

describe("de-duplication keys are per account", function()
  it("the same MsgId in two Mini Programs sharing a store: both handled, each its own reply", function()
    local store, seen = kv.memory(), {}
    local a, push_a, mc_a = app("wxaaaaaaaaaaaaaaa1", "A", store, seen)
    local b, push_b, mc_b = app("wxbbbbbbbbbbbbbbb2", "B", store, seen)
    local qa, ba = push_a(123456789, "na")
    local qb, bb = push_b(123456789, "nb")
    local sa, _, ra = a("POST", qa, {}, ba)
    local sb, _, rb = b("POST", qb, {}, bb)
    assert.equal(200, sa); assert.equal(200, sb)
    assert.same({ "wxaaaaaaaaaaaaaaa1:123456789", "wxbbbbbbbbbbbbbbb2:123456789" }, seen)
    local function reply_app(mc, body)
      local env = cjson.decode(body)
      return cjson.decode((assert(mc:decrypt(env.MsgSignature, ("%d"):format(env.TimeStamp), env.Nonce,
                                             env.Encrypt)))).app
    end
    assert.equal("wxaaaaaaaaaaaaaaa1", reply_app(mc_a, ra))
    assert.equal("wxbbbbbbbbbbbbbbb2", reply_app(mc_b, rb))
    -- a retransmission is still answered from the store, within its own app
    local sa2, _, ra2 = a("POST", qa, {}, ba)
    assert.equal(200, sa2); assert.equal(ra, ra2)
    assert.equal(2, #seen)
  end)

  it("keys name the account only for explicit ids (a digest of the message already differs)", function()
    assert.equal("mp:id:wx1:42", dedup.key("mp", 42, "{}", "wx1"))
    assert.equal("mp:id:42", dedup.key("mp", 42, "{}"))
    assert.equal(dedup.key("mp", nil, "{}"), dedup.key("mp", nil, "{}", "wx1"))
  end)
end)
