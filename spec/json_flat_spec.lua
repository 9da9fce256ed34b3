-- wxhw.json.decode's flat-object fast path (csrc/json_flat.c) against the
-- general path it stands in for (quote_big_integers + cjson): the same value,
-- or the same refusal, for every text. #c
local json = require "wxhw.json"
local core_json = require("wxhw.core").json
local cjson = require "cjson.safe"

local function general(s) return cjson.decode(core_json.quote_big_integers(s)) end

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if a ~= a then return b ~= b end
    if math.type and math.type(a) ~= math.type(b) then return false end
    return a == b and 1 / a == 1 / b -- -0.0 keeps its sign
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function check(s)
  local want, werr = general(s)
  local got, gerr = json.decode(s)
  if want == nil then
    assert(got == nil and gerr == werr, ("%q: general refuses (%s), fast gave %s"):format(s, werr, tostring(got)))
  else
    assert(same(got, want), ("%q decoded differently"):format(s))
  end
end

describe("wxhw.json flat-object fast path", function()
  it("takes flat objects and builds what cjson builds", function()
    local t = core_json.decode_flat('{"ToUserName":"gh_b","CreateTime":1700000000,"MsgId":12345678901234567890,' ..
      '"ok":true,"no":false,"nil":null,"neg":-0,"f":-1.5e-3,"esc":"a\\"b\\\\c\\/d\\n\\t"}')
    assert.is_table(t)
    assert.equal("gh_b", t.ToUserName)
    assert.equal(1700000000, t.CreateTime)
    assert.equal("12345678901234567890", t.MsgId)
    assert.is_true(t.ok); assert.is_false(t.no)
    assert.equal(cjson.null, t["nil"])
    assert.equal('a"b\\c/d\n\t', t.esc)
    assert.equal(-1.5e-3, t.f)
  end)

  it("declines what it does not read (the general path decides)", function()
    for _, s in ipairs{ '[1]', '{"a":{"b":1}}', '{"a":[1]}', '{"a":"\\u00e9"}', '{"a":01}', '{"a":1.}',
                        '{"a":0x10}', '{"a":"x\ty"}', '{"a\\"":1}', '{"a":1,}', '{"a":1} x', '{"a" 1}', '',
                        '{"a":tru}', '{"a":Infinity}', '{"a":NaN}', '{"a":+1}', '{"a":.5}' } do
      assert.is_false(core_json.decode_flat(s), s)
      check(s)
    end
  end)

  it("agrees with the general path on thousands of mutated texts", function()
    local seeds = {
      '{"ToUserName":"gh_b","FromUserName":"o1","CreateTime":1700000000,"MsgType":"event","Event":"x","MsgId":"m1"}',
      '{"errcode":0,"errmsg":"ok","access_token":"AbC","expires_in":7200}',
      '{ "a" : 9007199254740993 , "b" : -9007199254740993, "c": 9007199254740992, "d": 1e400, "e": -0.0 }',
      '{"a":"\\\\\\"\\/\\b\\f\\n\\r\\t","b":null,"a":2}', '{}', ' { } ',
    }
    local alphabet = { '"', '\\', '{', '}', '[', ']', ':', ',', '0', '1', '9', '-', '+', '.', 'e', 'E', ' ', 'n',
                       't', 'f', 'u', '\0', '\t', '\255' }
    local rnd = 12345
    local function rand(n) rnd = (rnd * 1103515245 + 12345) % 2147483648; return rnd % n + 1 end
    local n = 0
    for _, seed in ipairs(seeds) do
      check(seed)
      for _ = 1, 1500 do
        local s = seed
        for _ = 1, rand(3) do
          local p, op = rand(#s + 1), rand(3)
          local c = alphabet[rand(#alphabet)]
          if op == 1 then s = s:sub(1, p - 1) .. c .. s:sub(p)
          elseif op == 2 then s = s:sub(1, p - 1) .. s:sub(p + 1)
          else s = s:sub(1, p - 1) .. c .. s:sub(p + 1) end
        end
        check(s)
        n = n + 1
      end
    end
    assert.equal(#seeds * 1500, n)
  end)

  it("reads a large flat object in linear time, and declines a 65-member one", function()
    local parts = {}
    for i = 1, 64 do parts[i] = ('"k%d":"%s"'):format(i, ("v"):rep(16000)) end
    local big = "{" .. table.concat(parts, ",") .. "}" -- ~1 MB
    local t = assert(core_json.decode_flat(big))
    assert.equal(16000, #t.k64)
    parts[65] = '"k65":1'
    assert.is_false(core_json.decode_flat("{" .. table.concat(parts, ",") .. "}"))
  end)
end)
