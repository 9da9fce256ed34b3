-- RTP over UDP into the relay: libx264 access units packetised by
-- media.packetizer with packets swapped in flight, and G.711 µ-law RTP; the
-- reference worker sees ordered video and 20 ms audio; a lost packet makes
-- the video resume at the next IDR.
local call = require "wxhw.call"
local supervisor = require "wxhw.call.supervisor"
local relay_mod = require "wxhw.relay"
local media = require "wxhw.media"
local ff = require "support.ffmpeg"
local socket = require "socket"
local clock = require "wxhw.clock"

describe("relay RTP input #slow #nosan", function()
  local dir, aus, ulaw
  setup(function()
    dir = ff.tmpdir()
    aus = ff.access_units(ff.h264(dir .. "/v.264", { size = "320x240", rate = 15, seconds = 3, gop = 15 }), "h264")
    ff.must("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=300:sample_rate=8000 -t 3 -f mulaw " .. dir .. "/a.ul")
    ulaw = ff.read(dir .. "/a.ul")
  end)
  teardown(function() if dir then ff.cleanup(dir) end end)

  local function run(drop_au)
    local stats
    local calls = call.new{ ring_timeout = 10 }
    local sup = assert(supervisor.new{ calls = calls, command = { "./bin/wxhw", "call-worker", "--simulate", "--answer-after", "0.05" },
                                       on_stats = function(_, s) stats = s end })
    local relay = relay_mod.new{ calls = calls, supervisor = sup, jitter_ms = 80, lookup_every = 0.05 }
    local vport = relay:listen_rtp{ sn = "RTP1", model_id = "m", media = "h264" }
    local aport = relay:listen_rtp{ sn = "RTP1", model_id = "m", media = "pcmu" }
    calls:join_voip_room{ Action = "join_voip_room", RoomId = "rtp-room", ServerToken = "st", SessionKey = "sk",
                          Sn = "RTP1", ModelId = "m", Payload = "" }
    relay:run{ seconds = 5, until_fn = function() return calls:get("rtp-room").state == "TALKING" end }
    relay:run{ seconds = 0.1 }
    -- schedule: { due_s, port, packet }
    local sched = {}
    local pk, buf = media.packetizer{ codec = "h264", mtu = 600, pt = 96, seq = 100 }, media.buffer()
    for i, au in ipairs(aus) do
      local n = pk:pack(au, (i - 1) * 6000, buf)
      local pkts = buf:list()
      if i % 7 == 0 and n >= 2 then pkts[1], pkts[2] = pkts[2], pkts[1] end -- reordered in flight
      for j, p in ipairs(pkts) do
        if not (i == drop_au and j == 1) then sched[#sched + 1] = { (i - 1) / 15, vport, p } end
      end
    end
    for k = 0, math.floor(#ulaw / 160) - 1 do
      local p = media.rtp_build({ pt = 0, seq = (5000 + k) % 65536, ts = k * 160, ssrc = 77, marker = k == 0 },
                                ulaw:sub(k * 160 + 1, k * 160 + 160))
      sched[#sched + 1] = { k * 0.02, aport, p }
    end
    table.sort(sched, function(a, b) return a[1] < b[1] end)
    local u = assert(socket.udp())
    local t0, i = clock.monotonic(), 1
    while i <= #sched do
      local now = clock.monotonic() - t0
      while i <= #sched and sched[i][1] <= now do
        u:sendto(sched[i][3], "127.0.0.1", sched[i][2])
        i = i + 1
      end
      relay:step(0.002)
    end
    u:close()
    relay:run{ seconds = 0.5 }
    calls:hangup("rtp-room", "device")
    relay:run{ seconds = 3, until_fn = function() return stats ~= nil end }
    relay:close(); sup:close()
    return stats
  end

  it("reorders, depacketises and delivers in order with 20 ms audio", function()
    local st = assert(run(nil))
    assert.equal(0, st.order_errors)
    assert.equal(0, st.cadence_errors)
    assert.equal(#aus, st.video_frames)
    assert.truthy(st.audio_frames >= 140, "audio " .. st.audio_frames)
    assert.matches("7,8,.*5", st.first_video)
  end)

  it("resumes at the next IDR after a lost packet", function()
    local st = assert(run(20))
    assert.equal(0, st.order_errors)
    assert.equal(1, st.resumed_at_idr)
    assert.equal(#aus - 11, st.video_frames) -- AU 20 damaged, 21-30 wait for the IDR at 31
  end)
end)
