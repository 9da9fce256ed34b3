-- A gateway killed (-9) while it sets up a VoIP call (inside the
-- iot_voip_notify handler, e.g. waiting for the call daemon to start the
-- worker): WeChat's retransmission of the push is taken over by the
-- de-duplication claim (issue 14), and must then finish the setup. Before
-- the fix the copy found the session IDLE and answered 500 ("being set up by
-- another gateway") until tick() aborted it after the ring timeout: the call
-- was lost and the device stayed locked for 30 s.
local call = require "wxhw.call"
local kv = require "wxhw.call.store"
local procs = require "support.token_procs"
local files = require "support.files"

local PUSH = { Action = "join_voip_room", RoomId = "room-k9", ServerToken = "st", SessionKey = "sk", Sn = "SN-K9",
               ModelId = "model-k9", Payload = "" }

-- The first gateway: starts the call and hangs inside worker.start.
local FIRST = [[
  local call = require "wxhw.call"
  local store = assert(require("wxhw.call.store").shm{ path = arg[1], entries = 64, value_bytes = 2048 })
  local calls = call.new{ store = store, worker = {
    start = function() io.write("STARTING\n"); io.stdout:flush(); require("wxhw.clock").sleep(60); return true end,
    hangup = function() end, stop = function() end } }
  calls:join_voip_room{ Action = "join_voip_room", RoomId = "room-k9", ServerToken = "st", SessionKey = "sk",
                        Sn = "SN-K9", ModelId = "model-k9", Payload = "" }
]]

describe("a gateway killed while it sets a call up #c", function()
  local path
  before_each(function() path = files.fresh_path() end)
  after_each(function() os.remove(path) end)

  it("its retransmission finishes the setup; while the first lives it is still told to come again", function()
    local first = procs.spawn(FIRST, path)
    assert.equal("STARTING", first.line())
    local store = assert(kv.shm{ path = path, entries = 64, value_bytes = 2048 })
    local started = 0
    local calls = call.new{ store = store, worker = {
      start = function() started = started + 1; return true end, hangup = function() end, stop = function() end } }
    -- the first gateway is alive: its setup is not taken from it
    local r, err = calls:join_voip_room(PUSH)
    assert.is_nil(r)
    assert.matches("being set up by another gateway", tostring(err and err.message))
    first.kill(); first.wait() -- reaped, as the nginx master does
    r = assert(calls:join_voip_room(PUSH))
    assert.same({ errcode = 0, errmsg = "ok" }, r)
    assert.equal(1, started)
    assert.equal("CALLING", calls:get("room-k9").state)
    assert.equal("room-k9", store:get("dev:model-k9:SN-K9"))
    -- a later copy is answered from the session, without a second worker
    assert.same({ errcode = 0, errmsg = "ok" }, calls:join_voip_room(PUSH))
    assert.equal(1, started)
    store:close()
  end)
end)
