-- wxhw.json: 64-bit ids exact in and out (cjson 2.1.0 reads doubles and
-- writes 14 significant digits). Python's json module, which reads integers
-- exactly, is the independent reader of what we write.
local json = require "wxhw.json"

local function python_reads(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb")); f:write(text); f:close()
  local p = io.popen("python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); "
    .. "print(repr(sorted(v.items())))' " .. path)
  local out = p:read("*a"); p:close()
  os.remove(path)
  return (out:gsub("%s+$", ""))
end

describe("wxhw.json #c", function()
  it("decodes integers beyond 2^53 as their digits and leaves everything else to cjson", function()
    local v = assert(json.decode('{"a":23637352235060881,"b":-9007199254740993,"c":9007199254740992,'
      .. '"d":1.5e300,"e":12345678901234567.5,"f":"99999999999999999999","g":[18446744073709551615],'
      .. '"h":"q\\"99999999999999999999","i":123456789012345}'))
    assert.equal("23637352235060881", v.a)
    assert.equal("-9007199254740993", v.b)
    assert.equal(9007199254740992, v.c) -- 2^53 itself is exact as a number
    assert.equal(1.5e300, v.d)
    assert.equal("number", type(v.e)) -- not an integer literal: cjson's double
    assert.equal("99999999999999999999", v.f)
    assert.equal("18446744073709551615", v.g[1])
    assert.equal('q"99999999999999999999', v.h) -- digits inside a string stay in it
    assert.equal(123456789012345, v.i)
  end)

  it("quotes exactly the integer literals beyond 2^53 outside strings (C scan)", function()
    local q = require("wxhw.core").json.quote_big_integers
    local cases = {
      { "9007199254740992", "9007199254740992" },
      { "9007199254740993", '"9007199254740993"' },
      { "[-9007199254740993,1,-2]", '["-9007199254740993",1,-2]' },
      { "[00009007199254740992]", "[00009007199254740992]" },
      { '["\\\\",12345678901234567]', '["\\\\","12345678901234567"]' }, -- an escaped backslash ends no string
      { '["\"12345678901234567"]', '["\"12345678901234567"]' },
      { "[1.12345678901234567,12345678901234567e3,12345678901234567E-3]",
        "[1.12345678901234567,12345678901234567e3,12345678901234567E-3]" },
      { "[-,12345678901234567]", '[-,"12345678901234567"]' },
      { '[12345678901234567,"open', '[12345678901234567,"open' }, -- unterminated: left to the decoder
      { "", "" },
    }
    for _, c in ipairs(cases) do assert.equal(c[2], q(c[1]), c[1]) end
  end)

  it("refuses what is not JSON with nil and a message", function()
    for _, bad in ipairs{ "{nope", '{"a":12345678901234567890', '"unterminated 12345678901234567890', "",
                          '{"a":-,"b":12345678901234567}', false } do
      local v, err = json.decode(bad)
      assert.is_nil(v)
      assert.is_string(err)
    end
  end)

  it("writes 64-bit integers in full, as Python reads them", function()
    local s = json.encode{ a = json.bigint("23637352235060881"), b = 123456789012345, t = 1700000000,
                           c = json.bigint("-18446744073709551615") }
    assert.equal("[('a', 23637352235060881), ('b', 123456789012345), ('c', -18446744073709551615), "
      .. "('t', 1700000000)]", python_reads(s))
    assert.has_error(function() json.bigint("12a") end)
  end)

  it("gives ids as exact decimal text", function()
    assert.equal("123456789012346", json.id(123456789012346))
    assert.equal("9007199254740992", json.id(2 ^ 53))
    assert.equal("23637352235060881", json.id("23637352235060881"))
    assert.equal("m1", json.id("m1"))
    assert.equal(tostring(1.5), json.id(1.5))
  end)
end)
