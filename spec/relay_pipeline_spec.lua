-- The relay pipeline on a synthetic clock: IDR gating, parameter-set
-- caching, G.711 → 16 kHz 20 ms framing, jitter-buffer pacing.
local pipeline = require "wxhw.relay.pipeline"
local frame = require "wxhw.relay.frame"
local media = require "wxhw.media"
local mu = require "support.media_util"

local SPS = "\103\66\192\30" .. mu.nal("\103", 8, 1):sub(2)
local PPS = "\104\206\60\128"
local function au(kind, seed)
  local sc = "\0\0\0\1"
  if kind == "idr" then return sc .. SPS .. sc .. PPS .. sc .. mu.nal("\101", 200, seed) end
  if kind == "idr-bare" then return sc .. mu.nal("\101", 200, seed) end
  return sc .. mu.nal("\65", 100, seed)
end

local function decode_all(list)
  local d, out = frame.decoder(), {}
  for _, b in ipairs(list) do for _, f in ipairs(assert(d:push(b))) do out[#out + 1] = f end end
  return out
end

local function types_of(data)
  local t = {}
  for _, n in ipairs(media.nals(data)) do t[#t + 1] = media.nal_type(n) end
  return table.concat(t, ",")
end

describe("relay pipeline", function()
  it("drops media until TALKING, then starts at an IDR with SPS/PPS", function()
    local p = pipeline.new{ jitter_ms = 0 }
    p:video_au(au("idr", 1), 0, false, 0)
    p:audio("pcmu", string.rep("\255", 160), 0, 0)
    assert.equal(0, #p:poll(10))
    assert.equal(1, p.stats.dropped_not_talking)
    p:set_talking(true)
    p:video_au(au("p", 2), 66, false, 1)   -- no IDR yet: dropped
    p:video_au(au("p", 3), 133, false, 1)
    p:video_au(au("idr-bare", 4), 200, false, 1)  -- IDR without in-band SPS/PPS: cached ones prepended
    p:video_au(au("p", 5), 266, false, 1)
    local out = decode_all(p:poll(100))
    assert.equal(2, #out)
    assert.equal("7,8,5", types_of(out[1].data))
    assert.is_true(out[1].key)
    assert.equal("1", types_of(out[2].data))
    assert.equal(2, p.stats.dropped_waiting_key)
    assert.equal(out[1].seq + 1, out[2].seq)
  end)

  it("after a loss waits for the next IDR and marks the discontinuity", function()
    local p = pipeline.new{ jitter_ms = 0 }
    p:set_talking(true)
    local d = frame.decoder()
    local function rec(kind, seq, ts, seed)
      return assert(d:push(frame.encode(frame.H264, 0, 0, seq, ts, au(kind, seed))))[1]
    end
    p:device_frame(rec("idr", 1, 0, 1), 0)
    p:device_frame(rec("p", 2, 66, 2), 0)
    p:device_frame(rec("p", 5, 266, 3), 0)     -- seq 3 and 4 lost
    p:device_frame(rec("p", 6, 333, 4), 0)
    p:device_frame(rec("idr", 7, 400, 5), 0)
    p:device_frame(rec("p", 8, 466, 6), 0)
    local out = decode_all(p:poll(100))
    assert.equal(4, #out)
    assert.is_false(out[2].gap)
    assert.is_true(out[3].gap)
    assert.is_true(out[3].key)
    assert.equal(400, out[3].ts)
    assert.equal(2, p.stats.dropped_waiting_key)
  end)

  it("turns G.711 at 8 kHz into exact 640-byte 20 ms PCM frames at 16 kHz", function()
    local p = pipeline.new{ jitter_ms = 0 }
    p:set_talking(true)
    local tone = {}
    for i = 0, 159 do tone[#tone + 1] = math.floor(8000 * math.sin(2 * math.pi * 440 * i / 8000)) end
    local pcm8 = {}
    for _, v in ipairs(tone) do
      if v < 0 then v = v + 65536 end
      pcm8[#pcm8 + 1] = string.char(v % 256, math.floor(v / 256))
    end
    local ulaw = media.g711_encode(table.concat(pcm8), "ulaw")
    for k = 0, 49 do p:audio("pcmu", ulaw, k * 20, 0) end
    local out = decode_all(p:poll(10))
    assert.truthy(#out >= 48)
    for i, f in ipairs(out) do
      assert.equal(640, #f.data)
      assert.equal(frame.PCM16K, f.type)
      if i > 1 then assert.equal(20, f.ts - out[i - 1].ts) end
    end
    -- the 16 kHz signal carries the tone's energy (not silence)
    local s, sum = out[10].data, 0
    for i = 1, #s, 2 do
      local v = s:byte(i) + 256 * s:byte(i + 1)
      if v >= 32768 then v = v - 65536 end
      sum = sum + v * v
    end
    assert.truthy(math.sqrt(sum / 320) > 2000)
  end)

  it("releases frames at their timestamps plus the jitter delay", function()
    local p = pipeline.new{ jitter_ms = 100 }
    p:set_talking(true)
    p:video_au(au("idr", 1), 1000, false, 50.0)
    p:video_au(au("p", 2), 1066, false, 50.01)
    p:video_au(au("p", 3), 1133, false, 50.02)
    assert.equal(0, #p:poll(50.09))
    assert.equal(1, #p:poll(50.10))
    assert.equal(0, #p:poll(50.15))
    assert.equal(1, #p:poll(50.17))
    assert.equal(1, #p:poll(50.24))
    assert.equal(0, p:queued())
    -- a frame arriving after its time goes out at once and is counted
    p:video_au(au("p", 4), 1200, false, 50.4) -- due at 50.30
    assert.equal(1, #p:poll(50.4))
    assert.equal(1, p.stats.late_in)
    -- a device clock jump (beyond 5 s) rebases instead of flooding out
    p:video_au(au("p", 5), 1266, false, 70)
    assert.equal(0, #p:poll(70))
    assert.equal(1, #p:poll(70.1))
  end)
end)
