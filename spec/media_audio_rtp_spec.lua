-- Audio RTP payloads: G.711 (RFC 3551), Opus (RFC 7587), AAC-hbr (RFC 3640),
-- against ffmpeg's RTP muxer and demuxer.
local media = require "wxhw.media"
local u = require "support.media_util"
local ff = require "support.ffmpeg"

local adts_frames = require("support.media_util").adts_frames

describe("media audio RTP #c", function()
  it("G.711: packets of exactly 20 ms from any chunking; ts +160; marker on talkspurts", function()
    local ap = media.audio_packetizer{ codec = "pcmu", seq = 65535, ts = 4294967200, ssrc = 3 }
    local buf, pkts, r = media.buffer(), {}, u.rng(8)
    local data = u.nal("\1", 1000, 4)
    local pos = 1
    while pos <= #data do
      local step = r(250)
      local n = ap:pack(data:sub(pos, pos + step - 1), buf)
      for i = 1, n do pkts[#pkts + 1] = media.rtp_parse(buf:get(i)) end
      pos = pos + step
    end
    assert.are.equal(6, #pkts) -- 960 of 1000 bytes; 40 wait for more
    local all = {}
    for i, h in ipairs(pkts) do
      assert.are.equal(0, h.pt)
      assert.are.equal(160, #h.payload)
      assert.are.equal((65535 + i - 1) % 65536, h.seq)
      assert.are.equal((4294967200 + (i - 1) * 160) % 4294967296, h.ts)
      assert.are.equal(i == 1, h.marker)
      all[i] = h.payload
    end
    assert.are.equal(data:sub(1, 960), table.concat(all))
    ap:talkspurt()
    assert.are.equal(1, ap:pack(string.rep("\255", 120), buf))
    assert.is_true(media.rtp_parse(buf:get(1)).marker)
  end)

  it("Opus: TOC durations for every config and frame-count code", function()
    local want = { [0] = 480, 960, 1920, 2880 }
    for config = 0, 31 do
      local frame
      if config < 12 then frame = want[config % 4]
      elseif config < 16 then frame = config % 2 == 1 and 960 or 480
      else frame = ({ [0] = 120, 240, 480, 960 })[config % 4] end
      assert.are.equal(frame, media.opus_samples(string.char(config * 8)))
      assert.are.equal(2 * frame, media.opus_samples(string.char(config * 8 + 1, 0)))
      assert.are.equal(2 * frame, media.opus_samples(string.char(config * 8 + 2, 0)))
      local m = math.floor(5760 / frame)
      assert.are.equal(m * frame, media.opus_samples(string.char(config * 8 + 3, m)))
      assert.is_nil(media.opus_samples(string.char(config * 8 + 3, m + 1))) -- > 120 ms
    end
    assert.is_nil(media.opus_samples(""))
    assert.is_nil(media.opus_samples("\3"))
    local ap, buf = media.audio_packetizer{ codec = "opus", ts = 0 }, media.buffer()
    ap:pack("\252\1\2", buf) -- config 31 (20 ms CELT), 1 frame
    ap:pack("\3\2\1", buf)   -- config 0 (10 ms SILK), 2 frames
    local _, _, ts = ap:state()
    assert.are.equal(960 + 960, ts)
    local n, err = ap:pack("", buf)
    assert.are.equal(0, n)
    assert.are.equal("input", err.kind)
  end)

  it("AAC-hbr: AU header, fragmentation with the total size, unpack bounds", function()
    local raw = u.nal("\33", 300, 5)
    local len = 7 + #raw
    local adts = string.char(0xff, 0xf1, 0x50, 0x80 + math.floor(len / 2048),
      math.floor(len / 8) % 256, (len % 8) * 32 + 31, 0xfc) .. raw
    local ap, buf = media.audio_packetizer{ codec = "aac", pt = 97, ts = 0, mtu = 12 + 4 + 128 }, media.buffer()
    assert.are.equal(3, ap:pack(adts .. adts, buf) / 2)
    local parts = {}
    for i = 1, 3 do
      local h = media.rtp_parse(buf:get(i))
      assert.are.equal("\0\16" .. string.char(math.floor(300 / 32), (300 % 32) * 8), h.payload:sub(1, 4))
      assert.are.equal(i == 3, h.marker)
      parts[i] = h.payload:sub(5)
    end
    assert.are.equal(raw, table.concat(parts))
    assert.are.equal(1024, media.rtp_parse(buf:get(4)).ts)
    -- unpack two AUs in one packet; reject lies
    local two = "\0\32" .. string.char(0, 5 * 8, 0, 3 * 8) .. "AAAAABBB"
    local n = media.aac_unpack(media.rtp_build({ ts = 100 }, two), buf)
    assert.are.equal(2, n)
    assert.are.equal("AAAAA", buf:get(1))
    assert.are.equal("BBB", buf:get(2))
    assert.are.equal(1124, buf:meta(2).ts)
    local _, err = media.aac_unpack(media.rtp_build({}, "\0\32" .. string.char(0, 5 * 8, 0, 9 * 8) .. "AAAAABBB"), buf)
    assert.matches("runs past the end", err.message)
    _, err = media.aac_unpack(media.rtp_build({}, "\0\15\0"), buf)
    assert.matches("multiple of 16", err.message)
  end)
end)

describe("media audio RTP against ffmpeg", function()
  local dir
  setup(function() dir = ff.tmpdir() end)
  teardown(function() ff.cleanup(dir) end)

  it("ffmpeg decodes wxhw's PCMU and PCMA RTP to exactly the G.711 samples", function()
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'aevalsrc=0.5*sin(2*PI*440*t):s=8000:d=1' "
      .. "-f s16le %s"):format(dir .. "/a.s16"))
    local pcm = ff.read(dir .. "/a.s16")
    for _, c in ipairs({ { "pcmu", "ulaw" }, { "pcma", "alaw" } }) do
      local g = media.g711_encode(pcm, c[2])
      local ap, buf, pkts = media.audio_packetizer{ codec = c[1] }, media.buffer(), {}
      for pos = 1, #g, 100 do
        local n = ap:pack(g:sub(pos, pos + 99), buf)
        for i = 1, n do pkts[#pkts + 1] = buf:get(i) end
      end
      local _, ssrc = ap:state()
      local out = dir .. "/rx.s16"
      local ok, log = ff.feed_rtp(function(port) return media.sdp{ codec = c[1], port = port } end,
        pkts, ssrc, "-f s16le -y " .. ff.quote(out), dir)
      assert(ok, log)
      assert.are.equal(50, #pkts)
      assert.is_true(ff.read(out) == media.g711_decode(g, c[2]), c[1] .. " decoded differs")
    end
  end)

  it("timestamps of ffmpeg's Opus RTP advance by the TOC-derived duration", function()
    for _, dur in ipairs({ 20, 60, 10, 2.5 }) do
      ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'sine=f=440:r=48000:d=0.5' -c:a libopus "
        .. "-frame_duration %s -f ogg %s"):format(dur, dir .. "/a.ogg"))
      local pkts = ff.capture_rtp("-i " .. ff.quote(dir .. "/a.ogg") .. " -c copy", nil, dir)
      assert.is_true(#pkts >= 5)
      for i = 1, #pkts - 1 do
        local a, b = media.rtp_parse(pkts[i]), media.rtp_parse(pkts[i + 1])
        assert.are.equal(dur * 48, media.opus_samples(a.payload))
        assert.are.equal((a.ts + media.opus_samples(a.payload)) % 4294967296, b.ts)
      end
    end
  end)

  it("AAC-hbr: unpacks ffmpeg's RTP, and ffmpeg decodes wxhw's RTP to the source", function()
    -- MP4 carries the AudioSpecificConfig ffmpeg's RTP muxer needs; the ADTS
    -- copy holds the same raw AUs behind ADTS headers
    local m4a, src = dir .. "/a.m4a", dir .. "/a.aac"
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:sample_rate=16000:duration=1 "
      .. "-ac 1 -c:a aac -b:a 32k %s"):format(m4a))
    ff.must(("ffmpeg -nostdin -v error -y -i %s -c copy -f adts %s"):format(m4a, src))
    local frames = adts_frames(ff.read(src))
    local pkts = ff.capture_rtp("-i " .. ff.quote(m4a) .. " -c copy", nil, dir)
    local buf, raws = media.buffer(), {}
    for _, p in ipairs(pkts) do
      local n, err = media.aac_unpack(p, buf)
      assert.is_nil(err)
      for i = 1, n do raws[#raws + 1] = buf:get(i) end
    end
    -- ffmpeg aggregates AUs per packet and does not flush the last group at
    -- its trailer: every AU it did send must be the source's, in order
    assert.is_true(#raws >= #frames - 4 and #raws <= #frames, #raws .. " of " .. #frames)
    for i, r in ipairs(raws) do assert.is_true(frames[i]:sub(8) == r, "AU " .. i) end
    -- reverse direction
    local ap, mine = media.audio_packetizer{ codec = "aac", pt = 97 }, {}
    for _, f in ipairs(frames) do
      local n = ap:pack(f, buf)
      for i = 1, n do mine[#mine + 1] = buf:get(i) end
    end
    local _, ssrc = ap:state()
    local out = dir .. "/rx.md5"
    local ok, log = ff.feed_rtp(function(port)
      return media.sdp{ codec = "aac", port = port, pt = 97, rate = 16000, channels = 1, config = "1408" }
    end, mine, ssrc, "-f framemd5 -y " .. ff.quote(out), dir)
    assert(ok, log)
    local have = {}
    for line in ff.read(out):gmatch("[^\n]+") do
      if not line:match("^#") then have[#have + 1] = line:match("([0-9a-f]+)%s*$") end
    end
    assert.are.same(ff.framemd5("-i " .. ff.quote(src)), have)
  end)
end)
