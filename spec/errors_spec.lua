-- wxhw.Error prints whole wherever it was made: its __tostring is the C
-- core's, so a C-made error prints before (or without) wxhw.errors.
local errors = require "wxhw.errors"
local core = require "wxhw.core"
local files = require "support.files"

local runtime = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"

describe("wxhw.Error tostring", function()
  it("prints a C-made error whole in a process that never loaded wxhw.errors", function()
    local script = [[local core = require "wxhw.core"
      local _, err = core.crypto.base64_decode("Zm9")
      assert(not package.loaded["wxhw.errors"], "wxhw.errors was loaded")
      io.write(tostring(err))]]
    local p = io.popen(runtime .. " -e " .. files.quote(script) .. " 2>&1")
    local out = p:read("*a"); p:close()
    assert.equal("wxhw input error: invalid base64: length 3 is not a multiple of 4", out)
  end)

  it("prints whole numbers from JSON without .0, and the fields in a fixed order", function()
    local e = errors.new("wx", "appsecret wrong", { retryable = true, request_id = "r-1",
      http_status = 200, errmsg = "invalid appsecret", errcode = 40125.0 })
    assert.equal("wxhw wx error: appsecret wrong (errcode=40125, errmsg=invalid appsecret, "
      .. "http_status=200, request_id=r-1, retryable)", tostring(e))
    assert.equal("wxhw input error: x", tostring(errors.new("input", "x")))
    assert.equal("wxhw quota error: y (retryable)", tostring(errors.new("quota", "y", { retryable = true })))
  end)

  it("never raises on odd field types (a tostring that fails hides the real error)", function()
    local e = setmetatable({ kind = 7, message = { 1 }, errcode = 1.5, errmsg = false }, core.error_metatable)
    assert.equal("wxhw 7 error: table (errcode=1.5, errmsg=false)", tostring(e))
  end)
end)
