-- wxhw.callback.dedup entries: padded (entry_bytes, the lua_shared_dict
-- layout) and plain, replies returned byte for byte.
local dedup = require "wxhw.callback.dedup"
local kv = require "wxhw.call.store"

describe("callback dedup entries", function()
  local store, dd
  before_each(function()
    store = kv.memory()
    dd = dedup.new{ store = store, entry_bytes = 444 }
  end)

  it("pads claim and reply to one length, so the reply can overwrite the claim in place", function()
    local body = '{"Encrypt":"abc","x":"trailing spaces and newline  \n"}  '
    assert.equal("new", dd:claim("mp:id:1"))
    local claim = store:get("dup:mp:id:1")
    assert.equal(444 - #"dup:mp:id:1", #claim)
    assert.equal("P", claim:sub(1, 1))
    dd:done("mp:id:1", 200, "application/json", body)
    local v = store:get("dup:mp:id:1")
    assert.equal(#claim, #v)
    assert.is_true(dedup.is_done(v))
    local state, status, ctype, b = dd:claim("mp:id:1")
    assert.equal("dup", state)
    assert.equal(200, status); assert.equal("application/json", ctype); assert.equal(body, b)
  end)

  it("stores a reply that does not fit unpadded, and an empty content type", function()
    local body = ("z"):rep(1000) .. "\n"
    assert.equal("new", dd:claim("k"))
    dd:done("k", 204, nil, body)
    assert.equal("D", store:get("dup:k"):sub(1, 1))
    local state, status, ctype, b = dd:claim("k")
    assert.equal("dup", state); assert.equal(204, status); assert.is_nil(ctype); assert.equal(body, b)
  end)

  it("abandon releases a padded claim; without entry_bytes nothing is padded", function()
    assert.equal("new", dd:claim("a"))
    dd:abandon("a")
    assert.is_nil(store:get("dup:a"))
    assert.equal("new", dd:claim("a"))
    local plain = dedup.new{ store = kv.memory() }
    assert.equal("new", plain:claim("a"))
    assert.equal("P", plain.store:get("dup:a"))
    plain:done("a", 200, "text/plain", "success")
    assert.equal("D200\ntext/plain\nsuccess", plain.store:get("dup:a"))
  end)

  it("a claim in flight (padded or not) is busy for a copy that cannot wait", function()
    assert.is_true(store:add("dup:b", "P", 60))
    assert.equal("busy", dd:claim("b"))
    assert.equal("new", dd:claim("c"))
    assert.equal("busy", dd:claim("c"))
  end)
end)

-- The same claim/done/abandon protocol on each store kind, the shm table
-- included (several handles on one path stand for nginx workers).
local core = require "wxhw.core"
local function shm_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

for _, kind in ipairs{ "memory", "shm #c" } do
  describe("callback dedup on the " .. kind .. " store", function()
    local path, store, other
    before_each(function()
      if kind == "memory" then
        store = kv.memory(); other = store
      else
        path = shm_path()
        store = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
        other = assert(kv.shm{ path = path, entries = 64, value_bytes = 200 })
      end
    end)
    after_each(function()
      if path then store:close(); other:close(); os.remove(path); path = nil end
    end)

    it("claims once, replays the reply byte for byte to another handle, abandons", function()
      local a = dedup.new{ store = store, entry_bytes = 444 }
      local b = dedup.new{ store = other, entry_bytes = 444 }
      if kind ~= "memory" then assert.is_nil(a.entry_bytes) end
      assert.equal("new", a:claim("mp:id:7"))
      assert.equal("busy", b:claim("mp:id:7"))
      local body = "<xml>\0reply \n</xml>"
      assert.is_true(a:done("mp:id:7", 200, "text/xml", body))
      local state, status, ctype, got = b:claim("mp:id:7")
      assert.equal("dup", state); assert.equal(200, status); assert.equal("text/xml", ctype); assert.equal(body, got)
      assert.equal("new", b:claim("mp:id:8"))
      assert.is_true(b:abandon("mp:id:8"))
      assert.equal("new", a:claim("mp:id:8"))
    end)

    it("a claim that expired is claimed again", function()
      local a = dedup.new{ store = store, ttl = 0.05 }
      local b = dedup.new{ store = other, ttl = 0.05 }
      assert.equal("new", a:claim("k"))
      assert.equal("busy", b:claim("k"))
      core.clock.sleep(0.08)
      assert.equal("new", b:claim("k"))
    end)

    if kind ~= "memory" then
      it("a reply longer than value_bytes is not kept: nil, err, and copies get a plain acknowledgement", function()
        local a = dedup.new{ store = store }
        assert.equal("new", a:claim("big"))
        local ok, err = a:done("big", 200, "application/json", ("x"):rep(300))
        assert.is_nil(ok)
        assert.matches("value_bytes", err.message)
        local state, status, ctype, body = dedup.new{ store = other }:claim("big")
        assert.equal("dup", state)
        assert.same({ 200, "text/plain; charset=utf-8", "success" }, { status, ctype, body })
      end)
    end
  end)
end

describe("nginx: dedup on the shm store across workers #slow #nosan", function()
  it("a duplicate arriving while the first copy runs waits for its answer; the handler runs once", function()
    local socket = require "socket"
    local cjson = require "cjson"
    local msgcrypt = require "wxhw.msgcrypt"
    local nginx = require "support.nginx"
    local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"
    local path = shm_path()
    local srv = assert(nginx.start{
      workers = 2,
      http_block = ([[lua_shared_dict n 1m;
        init_worker_by_lua_block {
          SLOW = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q,
            dedup = require("wxhw.callback.ngx").dedup{ shm = %q, entries = 1000 },
            handlers = { slow_event = function(msg)
              ngx.shared.n:incr("calls", 1, 0)
              ngx.sleep(0.4)
              return { errcode = 0, pid = ngx.worker.pid() }
            end } }
        }]]):format(TOKEN, KEY, APPID, path),
      server_block = [[
        location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(SLOW) } }
        location = /n { content_by_lua_block {
          local s = tostring(ngx.shared.n:get("calls") or 0)
          ngx.header["Content-Length"] = #s
          ngx.print(s)
        } }
      ]],
    })
    local ok, failure = pcall(function()
      local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
      local msg = { MsgType = "event", Event = "slow_event", FromUserName = "o", CreateTime = os.time() }
      local conns = {}
      for i = 1, 4 do -- WeChat's copies: re-encrypted, new nonces
        local ts = tostring(os.time())
        local body, sig = mc:push_body(cjson.encode(msg), "mp_json", ts, "dup" .. i, "gh_1")
        local qs = ("timestamp=%s&nonce=%s&encrypt_type=aes&msg_signature=%s&openid=o1"):format(ts, "dup" .. i, sig)
        local c = assert(socket.connect("127.0.0.1", srv.port))
        c:send(("POST /push?%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
          :format(qs, #body, body))
        c:settimeout(5)
        conns[i] = c
      end
      local first
      for _, c in ipairs(conns) do
        local buf = assert(c:receive("*a"))
        c:close()
        assert.matches("^HTTP/1.1 200", buf)
        local b = buf:match("\r\n\r\n(.*)$")
        first = first or b
        assert.equal(first, b)
      end
      local c = assert(socket.connect("127.0.0.1", srv.port))
      c:settimeout(5)
      c:send("GET /n HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local resp = assert(c:receive("*a"))
      c:close()
      assert.equal("1", resp:match("\r\n\r\n(.*)$"))
      local r = cjson.decode(first)
      local plain = assert(mc:decrypt(r.MsgSignature, ("%d"):format(r.TimeStamp), r.Nonce, r.Encrypt))
      assert.equal(0, cjson.decode(plain).errcode)
      local s = assert(require("wxhw.call.store").shm{ path = path, entries = 1000, value_bytes = 512 })
      assert.equal(1, s:stats().entries)
      s:close()
    end)
    local log = srv:error_log()
    srv:stop()
    os.remove(path)
    assert(ok, tostring(failure) .. "\n" .. log)
  end)
end)
