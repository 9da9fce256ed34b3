-- H.264 RTP (RFC 6184 mode 1): packetiser, depacketiser, receiver. #c specs
-- run under valgrind too; the ffmpeg ones exchange RTP with ffmpeg over UDP.
local media = require "wxhw.media"
local u = require "support.media_util"

local function pack_all(pk, aus, ts0, step)
  local buf, pkts = media.buffer(), {}
  for i, au in ipairs(aus) do
    local n = pk:pack(au, ts0 + (i - 1) * step, buf)
    for j = 1, n do pkts[#pkts + 1] = buf:get(j) end
  end
  return pkts
end

local function depack_all(dp, pkts)
  local buf, frames = media.buffer(), {}
  for _, p in ipairs(pkts) do
    local n = dp:push(p, buf)
    for j = 1, n do frames[#frames + 1] = { data = buf:get(j), meta = buf:meta(j) } end
  end
  local n = dp:flush(buf)
  for j = 1, n do frames[#frames + 1] = { data = buf:get(j), meta = buf:meta(j) } end
  return frames
end

local SPS = "\103\66\192\41\140\141\65\2\36\3\194\33\26\128" -- 67 42 c0 29 ... (GStreamer vector)
local PPS = "\104\206\60\128"

describe("media H.264 RTP #c", function()
  it("splits NALs of N*(MTU-2)+{0,1,2} bytes into the right FU-A packets", function()
    local mtu = 112 -- payload budget 100, FU chunk 98
    for _, n in ipairs({ 1, 2, 3 }) do
      for _, extra in ipairs({ 0, 1, 2 }) do
        local len = n * 98 + extra + 1 -- +1: the NAL header is not carried in FU payloads
        local nal = u.nal("\101", len, len)
        local pk = media.packetizer{ mtu = mtu, seq = 65534, ssrc = 7, pt = 96 }
        local buf = media.buffer()
        local count = pk:pack("\0\0\0\1" .. nal, 1234, buf)
        local body = len - 1
        local want = len <= 100 and 1 or math.ceil(body / 98)
        assert.are.equal(want, count)
        local seen = {}
        for i = 1, count do
          local p = buf:get(i)
          assert.is_true(#p <= mtu)
          local h = assert(media.rtp_parse(p))
          assert.are.equal((65534 + i - 1) % 65536, h.seq)
          assert.are.equal(1234, h.ts)
          assert.are.equal(i == count, h.marker)
          if count > 1 then
            local ind, fh = h.payload:byte(1, 2)
            assert.are.equal(0x60 + 28, ind) -- F=0, NRI=3 copied, type 28
            assert.are.equal(i == 1, fh >= 0x80)
            assert.are.equal(i == count, fh % 0x80 >= 0x40)
            assert.are.equal(5, fh % 32)
          end
          seen[#seen + 1] = p
        end
        local frames = depack_all(media.depacketizer(), seen)
        assert.are.equal(1, #frames)
        assert.are.equal("\0\0\0\1" .. nal, frames[1].data)
        assert.is_true(frames[1].meta.key)
      end
    end
  end)

  it("aggregates SPS, PPS and a small IDR into one STAP-A with F/NRI rules", function()
    local idr = u.nal("\37", 40) -- NRI 1, type 5
    local sei = u.nal("\6", 10)  -- NRI 0, type 6
    local pk = media.packetizer{ mtu = 1200, seq = 1, ssrc = 1 }
    local buf = media.buffer()
    assert.are.equal(1, pk:pack(u.annexb({ SPS, PPS, sei, idr }, true), 90000, buf))
    local h = media.rtp_parse(buf:get(1))
    assert.is_true(h.marker)
    local p = h.payload
    assert.are.equal(0x60 + 24, p:byte(1)) -- NRI = max (SPS has NRI 3)
    local want = string.char(0, #SPS) .. SPS .. string.char(0, #PPS) .. PPS
      .. string.char(0, #sei) .. sei .. string.char(0, #idr) .. idr
    assert.are.equal(want, p:sub(2))
    -- without aggregation: four single-NAL packets, marker only on the last
    pk = media.packetizer{ mtu = 1200, aggregate = false }
    assert.are.equal(4, pk:pack(u.annexb({ SPS, PPS, sei, idr }), 0, buf))
    for i = 1, 4 do assert.are.equal(i == 4, media.rtp_parse(buf:get(i)).marker) end
  end)

  it("fills STAP-A up to the budget, then starts a new packet", function()
    local a, b, c = u.nal("\65", 40), u.nal("\65", 40), u.nal("\65", 40)
    -- budget 88: 1 + (2+40) + (2+40) = 85 fits, a third does not
    local pk = media.packetizer{ mtu = 100 }
    local buf = media.buffer()
    assert.are.equal(2, pk:pack(u.annexb({ a, b, c }), 0, buf))
    assert.are.equal(24, media.rtp_parse(buf:get(1)).payload:byte(1) % 32)
    assert.are.equal(c, media.rtp_parse(buf:get(2)).payload) -- lone NAL: single packet
  end)

  it("ignores NAL types 0 and 24..31 coming from an encoder", function()
    local pk, buf = media.packetizer{ mtu = 1200 }, media.buffer()
    local n = pk:pack(u.annexb({ u.nal("\24", 20), u.nal("\65", 30), u.nal("\31", 9), "\0\1\2" }), 0, buf)
    assert.are.equal(1, n)
    assert.are.equal(u.nal("\65", 30), media.rtp_parse(buf:get(1)).payload)
  end)

  it("rejects malformed packets with a reason and keeps working", function()
    local dp, buf = media.depacketizer{ wait_keyframe = false }, media.buffer()
    local function pkt(seq, payload, marker)
      return media.rtp_build({ seq = seq, ts = 3000, marker = marker }, payload)
    end
    local n, err = dp:push(pkt(1, "\24\0\50\65\1\2", true), buf) -- STAP-A size 50 > rest
    assert.are.equal(0, n)
    assert.are.equal("input", err.kind)
    assert.matches("runs past the end", err.message)
    n, err = dp:push(pkt(2, "\29\133\1\2", true), buf)
    assert.matches("interleaved", err.message)
    n, err = dp:push("\128\96\0", buf)
    assert.matches("shorter than the 12%-byte", err.message)
    n, err = dp:push(media.rtp_build({ seq = 3, ts = 6000, padding = 4 }, ""):sub(1, -2) .. "\200", buf)
    assert.matches("padding", err.message)
    -- a following key frame comes through intact
    local idr = u.nal("\101", 30)
    -- (seq 3 again: the rejected one must not count as received)
    n, err = dp:push(media.rtp_build({ seq = 3, ts = 9000, marker = true, padding = 3 }, idr), buf)
    assert.is_nil(err)
    assert.are.equal(1, n)
    assert.are.equal("\0\0\0\1" .. idr, buf:get(1))
    assert.are.equal(9000, buf:meta(1).ts)
    assert.is_true(dp:stats().malformed >= 4)
  end)

  it("never fabricates a NAL from FU-A fragments whose start was lost", function()
    local idr1, p1, idr2 = u.nal("\101", 500, 1), u.nal("\65", 500, 2), u.nal("\101", 500, 3)
    local pk = media.packetizer{ mtu = 212, seq = 100 }
    local pkts = pack_all(pk, { "\0\0\1" .. idr1, "\0\0\1" .. p1, "\0\0\1" .. idr2 }, 0, 3000)
    -- 499 / 198 -> 3 fragments per NAL; drop the first fragment of the first IDR
    table.remove(pkts, 1)
    local frames = depack_all(media.depacketizer{ wait_keyframe = false }, pkts)
    assert.are.equal(1, #frames) -- IDR1 damaged; P depends on it: dropped until IDR2
    assert.are.equal("\0\0\0\1" .. idr2, frames[1].data)
    assert.are.equal(6000, frames[1].meta.ts)
  end)

  it("accepts an FU with S and E both set as a complete NAL", function()
    local dp, buf = media.depacketizer(), media.buffer()
    local body = u.nal("\1", 20):sub(2)
    local n = dp:push(media.rtp_build({ seq = 9, ts = 1, marker = true }, "\124\197" .. body), buf)
    assert.are.equal(1, n)
    assert.are.equal("\0\0\0\1\101" .. body, buf:get(1)) -- F/NRI from indicator, type 5
  end)

  it("closes an access unit on a timestamp change when the marker is missing", function()
    local dp, buf = media.depacketizer(), media.buffer()
    local a, b = u.nal("\101", 30, 1), u.nal("\65", 30, 2)
    assert.are.equal(0, dp:push(media.rtp_build({ seq = 1, ts = 0 }, a), buf))
    assert.are.equal(1, dp:push(media.rtp_build({ seq = 2, ts = 3000 }, b), buf))
    assert.are.equal("\0\0\0\1" .. a, buf:get(1))
    assert.are.equal(1, dp:flush(buf))
    assert.are.equal("\0\0\0\1" .. b, buf:get(1))
  end)

  it("waits for the first key frame, then passes P-frames", function()
    local pkts = pack_all(media.packetizer{ mtu = 1200 },
      { u.annexb({ u.nal("\65", 50, 1) }), u.annexb({ SPS, PPS, u.nal("\101", 50, 2) }),
        u.annexb({ u.nal("\65", 50, 3) }) }, 0, 3000)
    local frames = depack_all(media.depacketizer(), pkts)
    assert.are.equal(2, #frames)
    assert.is_true(frames[1].meta.key)
    assert.are.equal(3000, frames[1].meta.ts)
    assert.is_false(frames[2].meta.key)
  end)

  it("survives seeded drop/duplicate/shuffle schedules without a corrupt frame", function()
    -- 40 access units: IDR every 10, sizes around the MTU multiples
    local aus = {}
    for i = 1, 40 do
      local key = (i - 1) % 10 == 0
      local nals = {}
      if key then nals = { SPS, PPS } end
      nals[#nals + 1] = u.nal(key and "\101" or "\65", 50 + (i * 97) % 900, i)
      if i % 3 == 0 then nals[#nals + 1] = u.nal("\65", 200 + i, i + 100) end
      aus[i] = u.annexb(nals)
    end
    local normal = {}
    for i, au in ipairs(aus) do
      normal[(i - 1) * 3000] = "\0\0\0\1" .. table.concat(require("wxhw.media").nals(au), "\0\0\0\1")
    end
    for seed = 1, 12 do
      local r = u.rng(seed * 7919)
      local pkts = pack_all(media.packetizer{ mtu = 200, seq = 65500 }, aus, 0, 3000)
      local sched = {}
      for _, p in ipairs(pkts) do
        local x = r(100)
        if x > 6 then sched[#sched + 1] = p end            -- ~6% loss
        if x > 94 then sched[#sched + 1] = p end           -- ~6% duplicates
      end
      -- local shuffles within windows of 8
      for i = 1, #sched - 8, 8 do
        if r(2) == 1 then
          local w = {}
          for k = 0, 7 do w[k + 1] = sched[i + k] end
          u.shuffle(w, r)
          for k = 0, 7 do sched[i + k] = w[k + 1] end
        end
      end
      local rx, dp = media.receiver{ window = 16 }, media.depacketizer()
      local ordered, frames = media.buffer(), media.buffer()
      local out = {}
      local function feed(n)
        for i = 1, n do
          local f = dp:push(ordered:get(i), frames)
          for j = 1, f do out[#out + 1] = { frames:get(j), frames:meta(j) } end
        end
      end
      for _, p in ipairs(sched) do feed(rx:push(p, ordered)) end
      feed(rx:flush(ordered))
      local f = dp:flush(frames)
      for j = 1, f do out[#out + 1] = { frames:get(j), frames:meta(j) } end
      assert.is_true(#out > 0, "seed " .. seed)
      local last_key = false
      for k, fr in ipairs(out) do
        assert.are.equal(normal[fr[2].ts], fr[1], "seed " .. seed .. " frame " .. k .. " corrupt")
        if k == 1 then assert.is_true(fr[2].key) end
      end
      local st = rx:stats()
      assert.is_true(st.lost + st.delivered >= 1 and st.duplicates >= 0)
      local _ = last_key
    end
  end)

  it("builds and parses RTP headers with CSRCs, an RFC 8285 extension and padding", function()
    local p = media.rtp_build({ pt = 111, seq = 513, ts = 4294967295, ssrc = 0xdeadbeef, marker = true,
      csrc = { 1, 0xffffffff }, ext = "\16\170\0", padding = 5 }, "payload")
    -- 12 + 2*4 (CSRC) + 4 + 4 (extension, padded to a word) + 7 + 5 padding
    assert.are.equal(12 + 8 + 8 + 7 + 5, #p)
    assert.are.equal(0xB2, p:byte(1)) -- V=2, P=1, X=1, CC=2
    local h = assert(media.rtp_parse(p))
    assert.are.same({ 1, 0xffffffff }, h.csrc)
    assert.are.equal(0xBEDE, h.ext_profile)
    assert.are.equal("\16\170\0\0", h.ext)
    assert.are.equal("payload", h.payload)
    assert.are.equal(28, h.header_len)
    assert.is_true(h.marker and h.padding)
    assert.are.equal(4294967295, h.ts)
    assert.are.equal(0xdeadbeef, h.ssrc)
    assert.are.equal(513, h.seq)
    local bad = {
      { p:sub(1, 11), "shorter" },
      { "\64" .. p:sub(2), "version" },
      { p:sub(1, 18), "CSRC" },
      { p:sub(1, 22), "extension" },
      { p:sub(1, -2) .. "\99", "padding" },
    }
    for _, b in ipairs(bad) do
      local r, err = media.rtp_parse(b[1])
      assert.is_nil(r)
      assert.matches(b[2], err.message)
    end
  end)

  it("unwraps 16-bit sequence numbers and 32-bit timestamps across wraps", function()
    local u32 = media.unwrapper(32)
    assert.are.equal(4294967000, u32:push(4294967000))
    assert.are.equal(4294967296 + 704, u32:push(704))  -- forward across the wrap
    assert.are.equal(4294967295, u32:push(4294967295)) -- a little back: before the wrap
    assert.are.equal(4294967296 + 5, u32:push(5))
    local u16 = media.unwrapper(16)
    assert.are.equal(65535, u16:push(65535))
    assert.are.equal(65536, u16:push(0))
    assert.are.equal(65535, u16:push(65535))
    assert.are.equal(40000, u16:push(40000))           -- closest candidate: 25535 back
    assert.has_error(function() u16:push(70000) end)
  end)

  it("receiver reorders within its window, drops duplicates and late packets", function()
    local rx, buf = media.receiver{ window = 4 }, media.buffer()
    local function p(seq) return media.rtp_build({ seq = seq, ssrc = 5 }, string.char(seq % 256)) end
    assert.are.equal(1, rx:push(p(65535), buf))
    assert.are.equal(0, rx:push(p(1), buf))      -- hole at 0
    assert.are.equal(2, rx:push(p(0), buf))      -- wraps: 0 then 1
    assert.are.equal("\0", media.rtp_parse(buf:get(1)).payload)
    assert.are.equal(0, rx:push(p(1), buf))      -- duplicate/late
    assert.are.equal(0, rx:push(p(3), buf))
    assert.are.equal(0, rx:push(p(4), buf))
    assert.are.equal(3, rx:push(p(5), buf))      -- window full: 2 given up as lost
    assert.are.equal(3, media.rtp_parse(buf:get(1)).seq)
    assert.are.equal(0, rx:push(p(8), buf))
    local st = rx:stats()
    assert.are.equal(1, st.lost)
    assert.are.equal(1, st.late + st.duplicates)
    assert.are.equal(6, st.delivered)            -- 65535, 0, 1, 3, 4, 5
    assert.are.equal(1, rx:flush(buf))           -- 8; holes 6 and 7 counted lost
    assert.are.equal(3, rx:stats().lost)
  end)
end)

describe("media H.264 RTP against ffmpeg", function()
  local ff = require "support.ffmpeg"
  local dir, src
  setup(function()
    dir = ff.tmpdir()
    src = ff.h264(dir .. "/src.264", { seconds = 1, gop = 10 })
  end)
  teardown(function() ff.cleanup(dir) end)

  it("depacketises ffmpeg's RTP (pkt_size 300) to the exact NALs ffmpeg wrote", function()
    local pkts = ff.capture_rtp("-f h264 -i " .. ff.quote(src) .. " -c copy", "?pkt_size=300", dir)
    assert.is_true(#pkts > 100)
    local rx, dp = media.receiver{ window = 32 }, media.depacketizer()
    local ordered, frames, got = media.buffer(), media.buffer(), {}
    local fu = 0
    local function feed(n)
      for i = 1, n do
        local pkt = ordered:get(i)
        if media.rtp_parse(pkt).payload:byte(1) % 32 == 28 then fu = fu + 1 end
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
    assert.is_true(fu > 50, "FU-A was exercised")
    assert.are.equal(0, rx:stats().lost)
    local want = ff.split_nals(ff.read(src))
    local have = ff.split_nals(table.concat(got))
    assert.are.equal(#want, #have)
    for i = 1, #want do assert.is_true(want[i] == have[i], "NAL " .. i .. " differs") end
    assert.are.equal(#ff.packets(src), #got)
  end)

  it("ffmpeg decodes wxhw's RTP (mtu 300, via SDP) to the source's frame hashes", function()
    local pk, buf, packets = media.packetizer{ mtu = 300, pt = 96 }, media.buffer(), {}
    for i, au in ipairs(ff.access_units(src)) do
      for j = 1, pk:pack(au, (i - 1) * 3600, buf) do packets[#packets + 1] = buf:get(j) end
    end
    local _, ssrc = pk:state()
    local out = dir .. "/rx.md5"
    local ok, log = ff.feed_rtp(function(port) return media.sdp{ codec = "h264", port = port, pt = 96 } end,
      packets, ssrc, "-f framemd5 " .. ff.quote(out), dir)
    assert(ok, log)
    local want, have = ff.framemd5("-f h264 -i " .. ff.quote(src)), ff.framemd5_hashes(ff.read(out))
    assert.are.equal(#want, #have)
    for i = 1, #want do assert.are.equal(want[i], have[i]) end
  end)
end)
