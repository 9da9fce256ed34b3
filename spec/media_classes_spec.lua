-- The wxhw.media classes as Lua sees them (csrc/lmedia/: one class helper for
-- all eleven): tostring texts, __index method tables, and the close contract —
-- every class that holds memory has __gc and __close on both runtimes, closing
-- twice and collecting afterwards is safe (ASan/valgrind would see a double
-- free), and an object whose constructor raises after it was created is
-- collected safely.
local media = require "wxhw.media"

local function mt(o) return getmetatable(o) end

describe("media classes #c", function()
  it("print the same texts as before the split", function()
    local cases = {
      { media.buffer(), "wxhw.media.Buffer (0 items, 0 bytes)" },
      { media.packetizer{ codec = "h265", mtu = 1000, pt = 97 },
        "wxhw.media.Packetizer (h265, mtu 1000, pt 97)" },
      { media.depacketizer(), "wxhw.media.Depacketizer (h264, 0 frames)" },
      { media.receiver{ window = 32 }, "wxhw.media.Receiver (window 32)" },
      { media.deframer(), "wxhw.media.Deframer (ok)" },
      { media.resampler(8000, 16000), "wxhw.media.Resampler (8000 -> 16000)" },
      { media.resampler(16000, 8000), "wxhw.media.Resampler (16000 -> 8000)" },
      { media.framer{ rate = 8000 }, "wxhw.media.Framer (8000 Hz, 160 samples/frame)" },
      { media.flv_muxer(), "wxhw.media.FlvMuxer (h264 aac)" },
      { media.flv_muxer{ video = false }, "wxhw.media.FlvMuxer ( aac)" },
      { media.flv_muxer{ video = "h265", audio = false }, "wxhw.media.FlvMuxer (h265)" },
      { media.reorderer{ codec = "h265" }, "wxhw.media.Reorderer (h265)" },
      { media.audio_packetizer{ codec = "pcma" }, "wxhw.media.AudioPacketizer (pcma, pt 8)" },
    }
    for _, c in ipairs(cases) do assert.are.equal(c[2], tostring(c[1])) end

    local buf, d = media.buffer(), media.deframer()
    local n, err = d:push("\0" .. string.rep("x", 15), buf)
    assert.are.equal(0, n)
    assert.are.equal("input", err.kind)
    assert.are.equal("wxhw.media.Deframer (failed)", tostring(d))
    assert.are.equal(2, media.packetizer{ mtu = 100 }:pack("\0\0\1\101" .. string.rep("x", 150), 0, buf))
    assert.are.equal("wxhw.media.Buffer (2 items, " .. buf:bytes() .. " bytes)", tostring(buf))
    assert.is_nil(mt(media.unwrapper()).__tostring)
  end)

  it("have method tables as __index and keep their names", function()
    local objs = {
      Buffer = media.buffer(), Packetizer = media.packetizer(), Depacketizer = media.depacketizer(),
      Receiver = media.receiver(), Deframer = media.deframer(), Resampler = media.resampler(8000, 16000),
      Framer = media.framer(), FlvMuxer = media.flv_muxer(), Reorderer = media.reorderer(),
      AudioPacketizer = media.audio_packetizer{ codec = "opus" }, Unwrapper = media.unwrapper(16),
    }
    for name, o in pairs(objs) do
      assert.are.equal("wxhw.media." .. name, mt(o).__name)
      assert.are.equal("table", type(mt(o).__index))
    end
    assert.are.equal(0, #media.buffer())
  end)

  it("close idempotently when they hold memory, and only then have __gc/__close", function()
    local buf = media.buffer()
    local holders = {
      buf, media.depacketizer(), media.receiver(), media.deframer(), media.framer(),
      media.flv_muxer(), media.reorderer(), media.audio_packetizer{ codec = "pcmu" },
    }
    -- give each something to free first
    media.packetizer():pack("\0\0\1\101abc", 0, buf)
    holders[4]:push("W", media.buffer())
    holders[5]:push("\1\0\2\0", nil, media.buffer())
    holders[8]:pack("\1\2\3", media.buffer())
    for _, o in ipairs(holders) do
      local m = mt(o)
      assert.are.equal("function", type(m.__gc))
      assert.are.equal("function", type(m.__close))
      m.__close(o)
      m.__close(o)
      m.__gc(o)
    end
    for _, o in ipairs{ media.packetizer(), media.resampler(8000, 16000), media.unwrapper() } do
      assert.is_nil(mt(o).__gc)
      assert.is_nil(mt(o).__close)
    end
    collectgarbage()
    collectgarbage()
    -- a closed Buffer is empty and still usable; Receiver and Framer refuse
    assert.are.equal(0, #buf)
    assert.are.equal(1, media.packetizer():pack("\0\0\1\101abc", 0, buf))
    assert.has_error(function() holders[3]:push("x", buf) end, "wxhw.media.Receiver is closed")
    assert.has_error(function() holders[3]:flush(buf) end, "wxhw.media.Receiver is closed")
    assert.has_error(function() holders[5]:push("\0\0", nil, buf) end, "wxhw.media.Framer is closed")
    assert.has_error(function() holders[5]:flush(buf) end, "wxhw.media.Framer is closed")
  end)

  it("are collected safely when the constructor raises after creating them", function()
    assert.has_error(function() media.framer{ rate = 1001, ms = 1 } end,
      "framer: rate * ms must be a whole number of samples")
    assert.has_error(function() media.packetizer{ mtu = 5 } end, "option 'mtu' must be in 17..65535")
    collectgarbage()
    collectgarbage()
  end)
end)
