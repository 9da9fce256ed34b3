-- H.265 RTP (RFC 7798): payload headers, and interop with ffmpeg both ways.
local media = require "wxhw.media"
local u = require "support.media_util"

describe("media H.265 RTP #c", function()
  -- NAL header: F(1) Type(6) LayerId(6) TID(3)
  local function hdr(t, layer, tid)
    local v = t * 512 + layer * 8 + tid
    return string.char(math.floor(v / 256), v % 256)
  end

  it("copies LayerId/TID into FU payload headers and fragments exactly", function()
    local nal = u.nal(hdr(1, 0, 3), 2 + 3 * 97 + 1, 9) -- TID 3 (ffmpeg would write 1)
    local pk, buf = media.packetizer{ codec = "h265", mtu = 12 + 100 }, media.buffer()
    local n = pk:pack("\0\0\1" .. nal, 0, buf)
    assert.are.equal(4, n) -- body 292 bytes in chunks of 97
    for i = 1, n do
      local p = media.rtp_parse(buf:get(i)).payload
      assert.are.equal(hdr(49, 0, 3), p:sub(1, 2))
      local fh = p:byte(3)
      assert.are.equal(i == 1, fh >= 128)
      assert.are.equal(i == n, fh % 128 >= 64)
      assert.are.equal(1, fh % 64)
    end
    local dp, out = media.depacketizer{ codec = "h265", wait_keyframe = false }, media.buffer()
    local got = 0
    for i = 1, n do got = got + dp:push(buf:get(i), out) end
    assert.are.equal(1, got)
    assert.are.equal("\0\0\0\1" .. nal, out:get(1))
  end)

  it("aggregates into an AP with the lowest LayerId/TID and F = OR", function()
    local vps, sps = hdr(32, 0, 1) .. "\12\1", hdr(33, 0, 2) .. "\1\1"
    local pps = string.char(0x80 + 68, 1) .. "\193" -- F bit set on this one
    local pk, buf = media.packetizer{ codec = "h265", mtu = 1200 }, media.buffer()
    assert.are.equal(1, pk:pack(u.annexb({ vps, sps, pps }), 0, buf))
    local p = media.rtp_parse(buf:get(1)).payload
    assert.are.equal(string.char(0x80 + 96, 1), p:sub(1, 2))
    assert.are.equal("\0\4" .. vps .. "\0\4" .. sps .. "\0\3" .. pps, p:sub(3))
  end)

  it("rejects truncated APs and reserved payload types, ignores PACI", function()
    local dp, buf = media.depacketizer{ codec = "h265", wait_keyframe = false }, media.buffer()
    local n, err = dp:push(media.rtp_build({ seq = 1, marker = true }, hdr(48, 0, 1) .. "\0\9\64\1"), buf)
    assert.matches("runs past the end", err.message)
    n, err = dp:push(media.rtp_build({ seq = 2, marker = true }, hdr(55, 0, 1) .. "\1"), buf)
    assert.matches("reserved", err.message)
    n, err = dp:push(media.rtp_build({ seq = 3 }, hdr(50, 0, 1) .. "\1\2\3\4"), buf)
    assert.is_nil(err)
    n, err = dp:push(media.rtp_build({ seq = 4, marker = true }, hdr(19, 0, 1) .. "\9\9"), buf)
    assert.are.equal(1, n) -- IDR_W_RADL after the PACI
    assert.is_true(buf:meta(1).key)
  end)
end)

describe("media H.265 RTP against ffmpeg", function()
  local ff = require "support.ffmpeg"
  local dir, src
  setup(function()
    dir = ff.tmpdir()
    src = ff.h265(dir .. "/src.265", { seconds = 1, gop = 10 })
  end)
  teardown(function() ff.cleanup(dir) end)

  it("depacketises ffmpeg's H.265 RTP (pkt_size 300) to the exact NALs ffmpeg wrote", function()
    local pkts = ff.capture_rtp("-f hevc -i " .. ff.quote(src) .. " -c copy", "?pkt_size=300", dir)
    assert.is_true(#pkts > 100)
    local rx, dp = media.receiver{ window = 32 }, media.depacketizer{ codec = "h265" }
    local ordered, frames, got = media.buffer(), media.buffer(), {}
    local fu = 0
    local function feed(n)
      for i = 1, n do
        local pkt = ordered:get(i)
        if math.floor(media.rtp_parse(pkt).payload:byte(1) / 2) % 64 == 49 then fu = fu + 1 end
        local f, err = dp:push(pkt, frames)
        assert.is_nil(err)
        for j = 1, f do got[#got + 1] = frames:get(j) end
      end
    end
    for _, p in ipairs(pkts) do
      if #p >= 12 and p:byte(2) % 128 == 96 then feed(rx:push(p, ordered)) end
    end
    feed(rx:flush(ordered))
    local f = dp:flush(frames)
    for j = 1, f do got[#got + 1] = frames:get(j) end
    assert.is_true(fu > 50, "FU was exercised")
    assert.are.equal(0, rx:stats().lost)
    local want = ff.split_nals(ff.read(src))
    local have = ff.split_nals(table.concat(got))
    assert.are.equal(#want, #have)
    for i = 1, #want do assert.is_true(want[i] == have[i], "NAL " .. i .. " differs") end
    assert.are.equal(#ff.packets(src, "hevc"), #got)
  end)

  it("ffmpeg decodes wxhw's RTP (mtu 300, via SDP) to the source's frame hashes", function()
    local pk, buf, packets = media.packetizer{ codec = "h265", mtu = 300, pt = 96 }, media.buffer(), {}
    for i, au in ipairs(ff.access_units(src, "hevc")) do
      for j = 1, pk:pack(au, (i - 1) * 3600, buf) do packets[#packets + 1] = buf:get(j) end
    end
    local _, ssrc = pk:state()
    local out = dir .. "/rx.md5"
    local ok, log = ff.feed_rtp(function(port) return media.sdp{ codec = "h265", port = port, pt = 96 } end,
      packets, ssrc, "-f framemd5 " .. ff.quote(out), dir)
    assert(ok, log)
    local want, have = ff.framemd5("-f hevc -i " .. ff.quote(src)), ff.framemd5_hashes(ff.read(out))
    assert.are.equal(#want, #have)
    for i = 1, #want do assert.are.equal(want[i], have[i]) end
  end)
end)
