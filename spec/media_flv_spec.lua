-- FLV muxer (H.264 + AAC) checked with ffprobe/ffmpeg; H.265 decoder
-- configuration record checked against the hvcC ffmpeg writes into MP4.
local media = require "wxhw.media"
local ff = require "support.ffmpeg"

local adts_frames = require("support.media_util").adts_frames

local function column(csv, pattern)
  local t = {}
  for line in csv:gmatch("[^\n]+") do t[#t + 1] = line:match(pattern) end
  return t
end

describe("media FLV against ffprobe/ffmpeg", function()
  local dir, vsrc, asrc
  setup(function()
    dir = ff.tmpdir()
    vsrc = ff.h264(dir .. "/v.264", { seconds = 1, gop = 12,
      extra = "-profile:v high -x264-params cabac=1:8x8dct=1" })
    asrc = dir .. "/a.aac"
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:sample_rate=44100:duration=1 "
      .. "-c:a aac -b:a 64k -f adts %s"):format(asrc))
  end)
  teardown(function() ff.cleanup(dir) end)

  it("muxes H.264 (high profile) + AAC that ffprobe reads frame for frame", function()
    local aus = ff.access_units(vsrc)
    local frames = adts_frames(ff.read(asrc))
    assert.is_true(#aus == 25 and #frames > 40)
    local mux, buf, out = media.flv_muxer{ video = "h264", audio = true }, media.buffer(), {}
    assert.are.equal(1, mux:header(buf))
    out[1] = buf:data()
    local vi, ai, seqs = 1, 1, 0
    local function ats(k) return math.floor((k - 1) * 1024 * 1000 / 44100 + 0.5) end
    while vi <= #aus or ai <= #frames do
      local n, err
      if ai > #frames or (vi <= #aus and (vi - 1) * 40 <= ats(ai)) then
        n, err = mux:video(aus[vi], (vi - 1) * 40, 0, buf)
        vi = vi + 1
      else
        n, err = mux:aac(frames[ai], ats(ai), buf)
        ai = ai + 1
      end
      assert.is_nil(err)
      for i = 1, n do
        if buf:meta(i).config then seqs = seqs + 1 end
        out[#out + 1] = buf:get(i)
      end
    end
    assert.are.equal(2, seqs) -- one AVC and one AAC sequence header
    local flv = table.concat(out)
    ff.write(dir .. "/out.flv", flv)
    local ok, log = ff.run("ffmpeg -nostdin -v error -i " .. ff.quote(dir .. "/out.flv") .. " -f null -")
    assert.is_true(ok)
    assert.are.equal("", log)
    local pk = ff.must("ffprobe -v error -show_entries packet=codec_type,pts,flags -of csv=p=0 "
      .. ff.quote(dir .. "/out.flv"))
    local vpts, apts, vkeys = {}, {}, 0
    for line in pk:gmatch("[^\n]+") do
      local kind, pts, flags = line:match("^(%a+),(%-?%d+),(.*)$")
      if kind == "video" then
        vpts[#vpts + 1] = tonumber(pts)
        if flags:find("K", 1, true) then vkeys = vkeys + 1 end
      elseif kind == "audio" then apts[#apts + 1] = tonumber(pts) end
    end
    assert.are.equal(#aus, #vpts)
    for i, p in ipairs(vpts) do assert.are.equal((i - 1) * 40, p) end
    assert.are.equal(3, vkeys) -- gop 12 over 25 frames
    assert.are.equal(#frames, #apts)
    for i, p in ipairs(apts) do assert.are.equal(ats(i), p) end
    -- decoded pictures and audio equal the sources'
    local want_v = ff.framemd5("-f h264 -i " .. ff.quote(vsrc))
    local got_v = ff.framemd5("-i " .. ff.quote(dir .. "/out.flv") .. " -map 0:v")
    assert.are.same(want_v, got_v)
    local want_a = ff.framemd5("-i " .. ff.quote(asrc))
    local got_a = ff.framemd5("-i " .. ff.quote(dir .. "/out.flv") .. " -map 0:a")
    assert.are.same(want_a, got_a)
    -- our own reader walks the same tags
    local tags, used = media.flv_tags(flv)
    assert.are.equal(#flv, used)
    assert.are.equal(#out - 1, #tags)
    assert.are.equal("\1\100", tags[1].data:sub(6, 7)) -- AVCC version 1, profile 100 (high)
  end)

  it("writes an H.265 record equal to the hvcC ffmpeg puts in MP4", function()
    local src = ff.h265(dir .. "/v.265", { seconds = 0.2, gop = 5 })
    ff.must(("ffmpeg -nostdin -v error -y -f hevc -i %s -c copy -f mp4 %s")
      :format(ff.quote(src), ff.quote(dir .. "/v.mp4")))
    local mp4 = ff.read(dir .. "/v.mp4")
    local at = mp4:find("hvcC", 1, true)
    assert.is_truthy(at)
    local b1, b2, b3, b4 = mp4:byte(at - 4, at - 1)
    local size = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    local hvcc = mp4:sub(at + 4, at - 4 + size - 1)
    for _, flavour in ipairs({ "codecid12", "enhanced" }) do
      local mux, buf = media.flv_muxer{ video = "h265", audio = false, hevc = flavour }, media.buffer()
      local aus = ff.access_units(src, "hevc")
      local n, err = mux:video(aus[1], 0, 0, buf)
      assert.is_nil(err)
      assert.are.equal(2, n)
      local tag = media.flv_tags(("FLV\1\1\0\0\0\9\0\0\0\0") .. buf:get(1))[1]
      local rec = tag.data:sub(6)
      if flavour == "codecid12" then
        assert.are.equal("\28\0\0\0\0", tag.data:sub(1, 5))
      else
        assert.are.equal("\144hvc1", tag.data:sub(1, 5))
      end
      -- identical except the fields ffmpeg derives from VUI/timing, which we leave
      -- at "unknown": min_spatial_segmentation (13-14), parallelism (15), frame rate (19-21)
      assert.are.equal(hvcc:sub(1, 13), rec:sub(1, 13))
      assert.are.equal(hvcc:sub(17, 19), rec:sub(17, 19))
      assert.are.equal(hvcc:byte(22) % 8, rec:byte(22) % 8)
      -- ffmpeg may add SEI arrays; the VPS/SPS/PPS arrays must match
      assert.are.equal(hvcc:byte(23), rec:byte(23))
      assert.are.equal(hvcc:sub(24), rec:sub(24))
    end
  end)
end)

describe("media FLV edge cases #c", function()
  local SPS = "\103\66\192\41\140\141\65\2\36\3\194\33\26\128"
  local PPS = "\104\206\60\128"
  it("strips 7- and 9-byte (CRC) ADTS headers and builds the AudioSpecificConfig", function()
    local raw = "\33\16\5\32\164\27\255\192"
    local len = 7 + #raw
    -- 16 kHz (index 8) mono AAC-LC, protection_absent = 1
    local h7 = string.char(0xff, 0xf1, 0x60, 0x40 + math.floor(len / 2048),
      math.floor(len / 8) % 256, (len % 8) * 32 + 31, 0xfc)
    local len9 = len + 2
    local h9 = string.char(0xff, 0xf0, 0x60, 0x40 + math.floor(len9 / 2048),
      math.floor(len9 / 8) % 256, (len9 % 8) * 32 + 31, 0xfc, 0xab, 0xcd)
    local mux, buf = media.flv_muxer{ video = false }, media.buffer()
    assert.are.equal(3, mux:aac(h7 .. raw .. h9 .. raw, 1000, buf))
    local tags = media.flv_tags("FLV\1\4\0\0\0\9\0\0\0\0" .. buf:data())
    assert.are.equal("\175\0\20\8", tags[1].data) -- ASC 14 08: LC, 16 kHz, mono
    assert.are.equal("\175\1" .. raw, tags[2].data)
    assert.are.equal("\175\1" .. raw, tags[3].data)
    assert.are.equal(1000, tags[2].ts)
    assert.are.equal(1064, tags[3].ts) -- + 1024 samples at 16 kHz
    local n, err = mux:aac(h7 .. raw:sub(1, 3), 0, buf)
    assert.are.equal(0, n)
    assert.matches("runs past the end", err.message)
  end)

  it("refuses frames before parameter sets and DTS going backwards", function()
    local mux, buf = media.flv_muxer{ audio = false }, media.buffer()
    local n, err = mux:video("\0\0\0\1\65\154\2\3", 0, 0, buf)
    assert.matches("no SPS/PPS", err.message)
    n, err = mux:video("\0\0\0\1" .. SPS .. "\0\0\0\1" .. PPS .. "\0\0\0\1\101\136\4\5", 100, 0, buf)
    assert.is_nil(err)
    assert.are.equal(2, n)
    assert.is_true(buf:meta(1).config and buf:meta(2).key)
    n, err = mux:video("\0\0\0\1\65\154\2\3", 60, 0, buf)
    assert.matches("backwards", err.message)
    -- timestamps above 24 bits use the extension byte
    n, err = mux:video("\0\0\0\1\65\154\2\3", 0x1234567, 0, buf)
    assert.are.equal(1, n)
    local t = media.flv_tags("FLV\1\1\0\0\0\9\0\0\0\0" .. buf:get(1))[1]
    assert.are.equal(0x1234567, t.ts)
    assert.is_nil((media.flv_tags("FLV\1\1\0\0\0\9\0\0\0\0\9\0\0\1\0\0\0\0\0\0\0\7\0\0\0\99")))
  end)
end)
