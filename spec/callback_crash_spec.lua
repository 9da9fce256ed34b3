-- A crash must not lose a push (issue 14): an nginx worker killed (-9)
-- inside a handler leaves a de-duplication claim behind; WeChat's
-- retransmission must take it over and run the handler, on both stores
-- nginx workers share, instead of getting 503 until the claim expires.
local socket = require "socket"
local cjson = require "cjson"
local msgcrypt = require "wxhw.msgcrypt"
local nginx = require "support.nginx"

local TOKEN, KEY, APPID = "AAAAA", string.rep("A", 43), "wxba5fad812f8e6fb9"

local function push(mc, msg, nonce)
  local ts = tostring(os.time())
  local body, sig = mc:push_body(cjson.encode(msg), "mp_json", ts, nonce, "gh_1")
  return ("/push?timestamp=%s&nonce=%s&encrypt_type=aes&msg_signature=%s"):format(ts, nonce, sig), body
end

local function send(port, method, target, body)
  local c = assert(socket.connect("127.0.0.1", port))
  body = body or ""
  c:send(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s")
    :format(method, target, #body, body))
  return c
end

local function request(port, method, target, body)
  local c = send(port, method, target, body)
  c:settimeout(15)
  local buf = c:receive("*a") or ""
  c:close()
  return tonumber(buf:match("^HTTP/1%.1 (%d+)")), buf:match("\r\n\r\n(.*)$")
end

for _, store in ipairs(require "support.dedup_stores") do
  describe("nginx: a worker killed inside a handler, " .. store.name .. " #slow #nosan", function()
    it("the retransmission takes over the dead worker's claim and runs the handler", function()
      local path = require("support.files").fresh_path()
      local srv = assert(nginx.start{
        workers = 2,
        http_block = ([[lua_shared_dict wxhw_callbacks 4m; lua_shared_dict n 1m;
          init_worker_by_lua_block {
            GW = require("wxhw.callback").mini_program{ token = %q, encoding_aes_key = %q, appid = %q,
              max_skew = false, dedup = %s,
              handlers = { crash_event = function()
                if ngx.shared.n:incr("runs", 1, 0) == 1 then
                  ngx.shared.n:set("victim", ngx.worker.pid())
                  ngx.sleep(60) -- killed here
                end
                return { errcode = 0, errmsg = "ran" }
              end } }
          }]]):format(TOKEN, KEY, APPID, store.conf(path)),
        server_block = [[
          location = /push { content_by_lua_block { require("wxhw.callback.ngx").serve(GW) } }
          location = /n { content_by_lua_block {
            local s = tostring(ngx.shared.n:get(ngx.var.arg_k))
            ngx.header["Content-Length"] = #s
            ngx.print(s)
          } }
        ]],
      })
      local mc = assert(msgcrypt.new{ token = TOKEN, encoding_aes_key = KEY, receive_id = APPID })
      local msg = { MsgType = "event", Event = "crash_event", FromUserName = "o", CreateTime = os.time(),
                    MsgId = 7000000001 }
      local ok, err = pcall(function()
        local target, body = push(mc, msg, "first")
        local first = send(srv.port, "POST", target, body)
        local victim
        for _ = 1, 250 do
          local _, v = request(srv.port, "GET", "/n?k=victim")
          victim = tonumber(v)
          if victim then break end
          socket.sleep(0.02)
        end
        assert(victim, "the handler never started")
        assert(os.execute("kill -9 " .. victim))
        first:settimeout(5)
        local got = first:receive("*a")
        first:close()
        assert.equal("", got or "") -- the connection died with its worker
        -- WeChat's retransmission: re-encrypted, a new nonce, the same MsgId
        target, body = push(mc, msg, "again")
        local t0 = socket.gettime()
        local status, reply = request(srv.port, "POST", target, body)
        local took = socket.gettime() - t0
        assert.equal(200, status, reply)
        local r = cjson.decode(reply)
        local plain = cjson.decode((assert(mc:decrypt(r.MsgSignature, ("%d"):format(r.TimeStamp), r.Nonce, r.Encrypt))))
        assert.same({ errcode = 0, errmsg = "ran" }, plain)
        assert.equal("2", select(2, request(srv.port, "GET", "/n?k=runs")))
        assert(took < 2, ("the copy waited %.1f s for a dead claimant"):format(took))
        -- the reply is kept: a third copy is answered without running the handler
        target, body = push(mc, msg, "third")
        assert.equal(200, (request(srv.port, "POST", target, body)))
        assert.equal("2", select(2, request(srv.port, "GET", "/n?k=runs")))
      end)
      local log = srv:error_log()
      srv:stop()
      assert(ok, tostring(err) .. "\n" .. log)
      if store.check then store.check(path) end -- the claim taken over, then the reply: one entry
      os.remove(path)
    end)
  end)
end
