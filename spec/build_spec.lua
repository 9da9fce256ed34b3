-- The build artefacts: one exported symbol, both runtimes, the rock.
local ossl = require "support.openssl"
local ROCKSPEC = "wxhw-" .. require("wxhw")._VERSION .. "-1.rockspec"

describe("build #lua54", function()
  it("exports exactly one symbol, luaopen_wxhw_core", function()
    for _, so in ipairs({ "build/5.4/wxhw/core.so", "build/luajit/wxhw/core.so" }) do
      local ok, out = ossl.run("nm -D --defined-only " .. so .. " | awk '{print $3}' | grep -v '^_'")
      assert.is_true(ok, so)
      assert.equal("luaopen_wxhw_core\n", out)
    end
  end)

  it("the LuaJIT build loads in luajit and not in lua5.4", function()
    local ok, out = ossl.run("LUA_CPATH='./build/luajit/?.so;;' LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' " ..
      "luajit -e 'io.write(require(\"wxhw\").crypto.hex(require(\"wxhw\").crypto.sha1(\"abc\")))'")
    assert.is_true(ok)
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", out)
  end)

  it("luarocks lint passes and luarocks make installs a working tree", function()
    assert.is_true((ossl.run("luarocks --lua-version 5.4 lint " .. ROCKSPEC)))
    local tree = ossl.tmpdir()
    finally(function() ossl.rmtree(tree) end)
    local ok = ossl.run("luarocks --lua-version 5.4 make --deps-mode=none --tree " .. tree .. " " .. ROCKSPEC)
    assert.is_true(ok)
    local ok2, out = ossl.run("LUA_PATH='" .. tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;' " ..
      "LUA_CPATH='" .. tree .. "/lib/lua/5.4/?.so;;' lua5.4 -e 'local w = require \"wxhw\"; " ..
      "io.write(package.searchpath(\"wxhw.core\", package.cpath), \" \", w.crypto.hex(w.crypto.sha256(\"\")))'")
    assert.is_true(ok2)
    assert.matches("^" .. tree:gsub("%p", "%%%0") .. "/lib/lua/5.4/wxhw/core.so e3b0c442", out)
  end)
end)
