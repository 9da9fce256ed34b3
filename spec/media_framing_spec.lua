-- Device framing (docs/framing.md): encoder, incremental decoder, errors.
local media = require "wxhw.media"
local u = require "support.media_util"

local function unhex(h)
  return (h:gsub("%s", ""):gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

describe("media device framing #c", function()
  it("matches the test vector in docs/framing.md", function()
    local doc = io.open("docs/framing.md"):read("*a")
    local vec = doc:match("```\n(57 01[%x ]+)\n```")
    assert.is_truthy(vec)
    local f = media.frame({ type = "h264", key = true, stream = 1, seq = 7, ts = 123456 },
      "\0\0\0\1\103\66")
    assert.are.equal(unhex(vec), f)
    assert.are.equal(f:sub(1, 16), media.frame_header({ type = 1, flags = 1, stream = 1, seq = 7,
      ts = 123456 }, 6))
  end)

  it("decodes records split at every possible chunking", function()
    local recs, wire = {}, {}
    for i = 1, 5 do
      recs[i] = { type = i % 2 == 1 and "pcm16k" or "h264", seq = 65533 + i, stream = i,
                  ts = 4294967290 + i * 20, payload = u.nal("\1", i * 37 % 50 + 1, i) }
      if i == 3 then recs[i].payload = "" end
      wire[#wire + 1] = media.frame({ type = recs[i].type, seq = recs[i].seq % 65536,
        stream = recs[i].stream, ts = recs[i].ts % 4294967296, key = i == 2,
        discontinuity = i == 4 }, recs[i].payload)
    end
    wire = table.concat(wire)
    local r = u.rng(42)
    for trial = 1, 60 do
      local d, buf, got, pos = media.deframer(), media.buffer(), {}, 1
      while pos <= #wire do
        local step = trial <= 20 and trial or r(40)
        local n, err = d:push(wire:sub(pos, pos + step - 1), buf)
        assert.is_nil(err)
        for i = 1, n do got[#got + 1] = { buf:get(i), buf:meta(i) } end
        pos = pos + step
      end
      assert.are.equal(0, d:pending())
      assert.are.equal(5, #got)
      for i, g in ipairs(got) do
        assert.are.equal(recs[i].payload, g[1])
        assert.are.equal(media.FRAME_TYPES[recs[i].type], g[2].type)
        assert.are.equal(recs[i].seq % 65536, g[2].seq)
        assert.are.equal(recs[i].stream, g[2].stream)
        assert.are.equal(recs[i].ts % 4294967296, g[2].ts)
        assert.are.equal(i == 2, g[2].key)
        assert.are.equal(i == 4, g[2].gap)
        assert.is_false(g[2].eos)
      end
    end
  end)

  it("fails on bad magic, version or oversize length and stays failed", function()
    local buf = media.buffer()
    local good = media.frame({ type = "control" }, '{"cmd":"hangup"}')
    local d = media.deframer()
    local n, err = d:push(good .. "X", buf)
    assert.are.equal(1, n) -- the good record before the garbage is kept
    assert.are.equal('{"cmd":"hangup"}', buf:get(1))
    assert.matches("bad magic", err.message)
    n, err = d:push(good, buf)
    assert.are.equal(0, n)
    assert.is_truthy(err)
    d = media.deframer()
    n, err = d:push("\87\2" .. good:sub(3), buf)
    assert.matches("version", err.message)
    d = media.deframer{ max_len = 10 }
    n, err = d:push(good, buf)
    assert.matches("maximum", err.message)
    assert.are.equal("input", err.kind)
  end)

  it("regression (fuzz/deframer): an empty first frame on a fresh buffer is not 'out of memory'", function()
    local d, buf = media.deframer(), media.buffer()
    local n, err = d:push(media.frame({ type = "keepalive", ts = 1 }, ""), buf)
    assert.is_nil(err)
    assert.are.equal(1, n)
    assert.are.equal("", buf:get(1))
    assert.are.equal(media.FRAME_TYPES.keepalive, buf:meta(1).type)
  end)

  it("rejects misuse loudly", function()
    assert.has_error(function() media.frame({ type = "mp3" }, "") end)
    assert.has_error(function() media.frame({ type = 1, seq = 70000 }, "") end)
    assert.has_error(function() media.frame({}, "") end)
  end)
end)
