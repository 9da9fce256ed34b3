-- PCM: G.711 against ffmpeg's pcm_mulaw / pcm_alaw byte for byte, 8k<->16k
-- resampling against ffmpeg's resampler within a stated error bound, and the
-- 20 ms framer.
local media = require "wxhw.media"
local u = require "support.media_util"
local ff = require "support.ffmpeg"

local function s16(v) -- one S16LE sample
  if v < 0 then v = v + 65536 end
  return string.char(v % 256, math.floor(v / 256))
end

local function samples(pcm)
  local t = {}
  for i = 1, #pcm - 1, 2 do
    local lo, hi = pcm:byte(i, i + 1)
    local v = lo + hi * 256
    if v >= 32768 then v = v - 65536 end
    t[#t + 1] = v
  end
  return t
end

--- SNR in dB of `got` against `ref` over the middle 80% (no lag allowed: the
-- resampler compensates its group delay).
local function snr(ref, got)
  local best = -1e9
  local n = math.min(#ref, #got)
  local lo, hi = math.floor(n * 0.1), math.floor(n * 0.9)
  for lag = 0, 0 do
    local sig, err = 0, 0
    for i = lo, hi do
      local r, g = ref[i], got[i + lag]
      if r and g then sig = sig + r * r; err = err + (r - g) * (r - g) end
    end
    local db = 10 * math.log(sig / math.max(err, 1e-9)) / math.log(10)
    if db > best then best = db end
  end
  return best
end

describe("media PCM against ffmpeg", function()
  local dir
  setup(function() dir = ff.tmpdir() end)
  teardown(function() ff.cleanup(dir) end)

  it("G.711 encode equals ffmpeg pcm_mulaw/pcm_alaw for all 65536 sample values", function()
    local t = {}
    for v = -32768, 32767 do t[#t + 1] = s16(v) end
    local pcm = table.concat(t)
    ff.write(dir .. "/all.s16", pcm)
    for _, law in ipairs({ { "ulaw", "mulaw" }, { "alaw", "alaw" } }) do
      ff.must(("ffmpeg -nostdin -v error -y -f s16le -ar 8000 -ac 1 -i %s -c:a pcm_%s -f %s %s")
        :format(dir .. "/all.s16", law[2], law[2], dir .. "/all." .. law[2]))
      local want = ff.read(dir .. "/all." .. law[2])
      local got = media.g711_encode(pcm, law[1])
      assert.are.equal(#want, #got)
      assert.is_true(want == got, law[1] .. " encoding differs from ffmpeg")
    end
  end)

  it("G.711 decode equals ffmpeg for all 256 codes of both laws", function()
    local t = {}
    for c = 0, 255 do t[#t + 1] = string.char(c) end
    local codes = table.concat(t)
    ff.write(dir .. "/codes", codes)
    for _, law in ipairs({ { "ulaw", "mulaw" }, { "alaw", "alaw" } }) do
      local want = ff.must(("ffmpeg -nostdin -v error -f %s -ar 8000 -ac 1 -i %s -f s16le -")
        :format(law[2], dir .. "/codes"))
      assert.are.equal(512, #want)
      assert.is_true(want == media.g711_decode(codes, law[1]), law[1] .. " decoding differs")
    end
  end)

  it("resamples 8k->16k and 16k->8k with >= 60 dB SNR against ffmpeg and the ideal signal", function()
    -- speech-band tones; at 16k also a 6 kHz tone the downsampler must remove
    local expr8 = "0.3*sin(2*PI*300*t)+0.3*sin(2*PI*1000*t)+0.2*sin(2*PI*2500*t)"
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'aevalsrc=%s:s=8000:d=1' -f s16le %s")
      :format(expr8, dir .. "/a8.s16"))
    ff.must(("ffmpeg -nostdin -v error -y -f s16le -ar 8000 -ac 1 -i %s -ar 16000 -f s16le %s")
      :format(dir .. "/a8.s16", dir .. "/a16.ff"))
    local pcm8 = ff.read(dir .. "/a8.s16")
    local rs = media.resampler(8000, 16000)
    local out, pos = {}, 1
    while pos <= #pcm8 do -- odd-sized chunks exercise the state
      out[#out + 1] = rs:process(pcm8:sub(pos, pos + 333))
      pos = pos + 334
    end
    out[#out + 1] = rs:flush()
    local up = table.concat(out)
    assert.are.equal(2 * #pcm8, #up)
    local db_up = snr(samples(ff.read(dir .. "/a16.ff")), samples(up))
    assert.is_true(db_up >= 60, ("8k->16k SNR vs ffmpeg %.1f dB"):format(db_up))
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'aevalsrc=%s:s=16000:d=1' -f s16le %s")
      :format(expr8, dir .. "/a16.ideal"))
    local db_ideal = snr(samples(ff.read(dir .. "/a16.ideal")), samples(up))
    assert.is_true(db_ideal >= 60, ("8k->16k SNR vs ideal %.1f dB"):format(db_ideal))

    local expr16 = expr8 .. "+0.2*sin(2*PI*6000*t)"
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'aevalsrc=%s:s=16000:d=1' -f s16le %s")
      :format(expr16, dir .. "/b16.s16"))
    ff.must(("ffmpeg -nostdin -v error -y -f s16le -ar 16000 -ac 1 -i %s -ar 8000 -f s16le %s")
      :format(dir .. "/b16.s16", dir .. "/b8.ff"))
    local pcm16 = ff.read(dir .. "/b16.s16")
    rs = media.resampler(16000, 8000)
    local down = rs:process(pcm16) .. rs:flush()
    assert.are.equal(#pcm16 / 2, #down)
    local db_down = snr(samples(ff.read(dir .. "/b8.ff")), samples(down))
    assert.is_true(db_down >= 60, ("16k->8k SNR vs ffmpeg %.1f dB"):format(db_down))
    -- the 6 kHz tone must be gone: compare with the in-band tones alone at 8 kHz
    ff.must(("ffmpeg -nostdin -v error -y -f lavfi -i 'aevalsrc=%s:s=8000:d=1' -f s16le %s")
      :format(expr8, dir .. "/b8.ideal"))
    db_ideal = snr(samples(ff.read(dir .. "/b8.ideal")), samples(down))
    assert.is_true(db_ideal >= 60, ("16k->8k SNR vs ideal %.1f dB"):format(db_ideal))
  end)
end)

describe("media PCM framer #c", function()
  it("cuts any chunking into exact 20 ms frames (640 B at 16 kHz)", function()
    local r = u.rng(5)
    local t = {}
    for i = 1, 16000 do t[i] = s16((i * 37) % 65536 - 32768) end
    local pcm = table.concat(t) -- 1 s
    local fr, buf, frames, pos = media.framer{ rate = 16000, ms = 20 }, media.buffer(), {}, 1
    while pos <= #pcm do
      local step = r(700) * 2
      local n = fr:push(pcm:sub(pos, pos + step - 1), nil, buf)
      for i = 1, n do frames[#frames + 1] = { buf:get(i), buf:meta(i) } end
      pos = pos + step
    end
    assert.are.equal(50, #frames)
    for i, f in ipairs(frames) do
      assert.are.equal(640, #f[1])
      assert.are.equal((i - 1) * 320, f[2].ts)
      assert.is_false(f[2].gap)
    end
    local all = {}
    for i, f in ipairs(frames) do all[i] = f[1] end
    assert.are.equal(pcm, table.concat(all))
    assert.are.equal(0, fr:flush(buf))
  end)

  it("fills gaps with silence, drops overlap, restarts on a big jump", function()
    local fr, buf = media.framer{ rate = 8000, ms = 20, max_gap_ms = 100 }, media.buffer()
    local a = string.rep(s16(1000), 100)
    assert.are.equal(0, fr:push(a, 0, buf))                -- samples 0..99
    assert.are.equal(1, fr:push(a, 140, buf))              -- gap 100..139 silent
    local f = buf:get(1)
    assert.are.equal(320, #f)
    assert.is_true(buf:meta(1).gap)
    assert.are.equal(string.rep(s16(1000), 100) .. string.rep("\0\0", 40) .. string.rep(s16(1000), 20), f)
    -- overlap: samples 200..239 are already framed/held; 40 of these 60 dropped
    assert.are.equal(0, fr:push(string.rep(s16(7), 60), 200, buf))
    assert.are.equal(40, fr:stats().dropped_samples)
    assert.are.equal(40, fr:stats().filled_samples)
    -- jump of 10 s: partial frame padded and emitted, framing restarts there
    assert.are.equal(2, fr:push(string.rep(s16(5), 160), 80000, buf))
    assert.are.equal(160, buf:meta(1).ts)                  -- held 160..259, padded
    assert.are.equal(string.rep(s16(1000), 80) .. string.rep(s16(7), 20) .. string.rep("\0\0", 60),
      buf:get(1))
    assert.are.equal(80000, buf:meta(2).ts)
    assert.is_true(buf:meta(2).gap)
    assert.are.equal(string.rep(s16(5), 160), buf:get(2))
    assert.are.equal(0, fr:push(string.rep(s16(5), 10), nil, buf))
    assert.are.equal(1, fr:flush(buf))
    assert.are.equal(80160, buf:meta(1).ts)
    local n, err = fr:push("\1\2\3", nil, buf)
    assert.is_nil(n)
    assert.are.equal("input", err.kind)
  end)
end)
