--- Random-input run of the Lua parsers of unauthenticated bytes
-- (spec/support/untrusted_parsers.lua), the Lua side of `make fuzz`:
--
--   lua5.4 fuzz/lua_parsers.lua [seconds] [seed]     (from the repository root,
--   with LUA_PATH/LUA_CPATH on lua/, spec/ and build/<runtime>: see fuzz/Makefile)
--
-- Half the time goes to random inputs (bytes, and soups of the tokens the
-- parsers look for) up to 64 KB: no parser may raise. The other half times
-- each parser on inputs built by repeating a random run of tokens (the
-- shape of the worst cases: openers, nesting, separators) at 16 KB, 64 KB
-- and 1 MB: the time per byte must not grow (spec/support/linear.lua). An
-- input that raises or is not linear is written to
-- fuzz/artifacts/lua_parsers/; turn it into a case of
-- spec/hostile_input_spec.lua. Last line: "N passed, N failed" (parsers).
local parsers = require "support.untrusted_parsers"
local linear = require "support.linear"

local seconds = tonumber(arg[1]) or 60
local seed = tonumber(arg[2]) or os.time()
math.randomseed(seed)
local random, char, concat = math.random, string.char, table.concat

local TOKENS = {
  "<xml>", "</xml>", "<Encrypt>", "</Encrypt>", "<![CDATA[", "]]>", "]]", "<", ">", "</", "<a>", "</a>",
  "&amp;", "&lt;", "&", "=", "%", "%4", "%41", "+", "{", "}", "[", "]", ",", ":", '"', "\\", "\\u00e9", "\\/",
  '"Encrypt":', '"encrypt":', '{"Encrypt":"', '"a":', "0", "-", "1e", ".", "123456789012345678901", "true",
  "null", " ", "\t", "\r\n", "\n", "\0", "wechatpay-signature:", "Wechatpay-Timestamp:", "1714112445",
  "WECHATPAY/SIGNTEST/", "msg_signature=", "timestamp=", "nonce=", "echostr=", "MsgType", "event", "A",
}

local function token() return TOKENS[random(#TOKENS)] end

-- Small vocabularies of what one parser looks for: a run drawn from one of
-- them is likely to repeat an opener or a separator the way attacks do.
local FAMILIES = {
  { "<xml>", "</xml>", "<Encrypt>", "</Encrypt>", "<![CDATA[", "]]>", " ", "<" },
  { "{", "[", '"Encrypt":', '"', ":", ",", "\\", "1" },
  { "&", "=", "%", "%41", "+", "msg_signature=", "a", "" },
  { "\n", ":", "Wechatpay-Signature", "wechatpay-timestamp", " ", "1", "A", "\r" },
}

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = char(random(0, 255)) end
  return concat(t)
end

-- Tokens, random bytes and repeated runs, about n bytes.
local function soup(n)
  local t, len = {}, 0
  while len < n do
    local r = random(10)
    local piece = r <= 6 and token() or r <= 8 and random_bytes(random(1, 8))
                  or (token() .. token()):rep(random(2, 64))
    t[#t + 1] = piece
    len = len + #piece
  end
  return concat(t):sub(1, n)
end

-- A random short run of tokens (of one family, or of any), repeated to n bytes.
local function repeated_run()
  local parts, family = {}, random(2) == 1 and FAMILIES[random(#FAMILIES)]
  for i = 1, random(1, 4) do parts[i] = family and family[random(#family)] or token() end
  if concat(parts) == "" then parts[1] = "<" end
  local unit = concat(parts)
  local head = random(2) == 1 and soup(random(0, 32)) or ""
  return function(n) return head .. unit:rep(math.floor((n - #head) / #unit) + 1):sub(1, n - #head) end, unit
end

local function save(name, input, why)
  os.execute("mkdir -p fuzz/artifacts/lua_parsers")
  local path = ("fuzz/artifacts/lua_parsers/%s-%d-%d"):format(name:gsub("[^%w]+", "_"), seed, random(1e9))
  local f = assert(io.open(path, "wb"))
  f:write(input)
  f:close()
  io.stderr:write(("%s: %s\n  input saved to %s (%d bytes)\n"):format(name, why, path, #input))
end

local failed, inputs, checks = {}, 0, 0
local clock = os.clock
local random_until = clock() + seconds / 2

-- Garbage: nothing may raise.
while clock() < random_until do
  local r = random(10)
  local n = r <= 6 and random(0, 64) or r <= 9 and random(64, 4096) or random(4096, 65536)
  local input = random(3) == 1 and random_bytes(n) or soup(n)
  inputs = inputs + 1
  for _, p in ipairs(parsers) do
    if not failed[p.name] then
      local ok, err = pcall(p.call, input)
      if not ok then
        failed[p.name] = true
        save(p.name, input, "raised " .. tostring(err))
      end
    end
  end
end

-- Repeated runs: each parser stays linear. Every parser gets at least one
-- check, then as many rounds as the time allows.
local deadline = clock() + seconds / 2
repeat
  for _, p in ipairs(parsers) do
    if checks >= #parsers and clock() >= deadline then break end
    if not failed[p.name] then
      local make, unit = repeated_run()
      local f = function(s) p.call(s) end
      local ok, r = pcall(linear.check, f, make, { rounds = 3 })
      if ok and not r.ok then ok, r = pcall(linear.check, f, make, { rounds = 7 }) end -- noise: once more, longer
      checks = checks + 1
      if not ok then
        failed[p.name] = true
        save(p.name, make(65536), "raised " .. tostring(r))
      elseif not r.ok then
        failed[p.name] = true
        save(p.name, make(65536), ("%s (unit %q)"):format(r.why, unit))
      end
    end
  end
until clock() >= deadline

local nfail = 0
for _ in pairs(failed) do nfail = nfail + 1 end
print(("lua_parsers (%s, seed %d): %d random inputs, %d linearity checks"):format(
  rawget(_G, "jit") and "luajit" or _VERSION, seed, inputs, checks))
print(("%d passed, %d failed"):format(#parsers - nfail, nfail))
os.exit(nfail == 0 and 0 or 1)
