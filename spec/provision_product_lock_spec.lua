-- Two jobs (two device lists, two manifests) on one state dir and product
-- started together: one product, one key (issue 14's class "one run's state
-- clobbered by another"; the journal lock covers one job only). Before the
-- fix each run created its own product, the product record and the key file
-- kept the last writer's, and the other product was orphaned with its 200
-- devices and its private key lost.
local emulator = require "support.emulator"
local files = require "support.files"
local cjson = require "cjson.safe"

local ROOT, q = files.cwd(), files.quote

describe("provision: two jobs of one product at once", function()
  local emu, dir
  before_each(function()
    emu = emulator.start{ root = ROOT }
    dir = files.tmpdir("wxhw-plock")
  end)
  after_each(function()
    if emu then emu.stop() end
    os.execute("rm -rf " .. q(dir))
  end)

  it("create one product and one key; both lists are provisioned on it", function()
    for j = 1, 2 do
      local lines = { "device_id,sn" }
      for i = 1, 50 do lines[#lines + 1] = ("J%dD%04d,J%dSN%04d"):format(j, i, j, i) end
      files.write(("%s/d%d.csv"):format(dir, j), table.concat(lines, "\n") .. "\n")
    end
    -- createproduct answers after 0.5 s: both runs are inside it at once
    emu.control("/__emulator/faults", { path = "/wxa/business/runtime/createproduct", delay_ms = 500 })
    local cmd = "cd %s && lua5.4 bin/wxhw provision %s --product Twin --model-name TwinModel --emulator %s " ..
                "--state-dir %s --out %s --quiet 2>&1; echo rc=$?"
    local p = {}
    for j = 1, 2 do
      p[j] = io.popen(cmd:format(q(ROOT), q(("%s/d%d.csv"):format(dir, j)), emu.base_url, q(dir .. "/state"),
                                 q(("%s/m%d.csv"):format(dir, j))))
    end
    local out = {}
    for j = 1, 2 do out[j] = p[j]:read("*a"); p[j]:close() end
    assert.matches("rc=0", out[1], out[1])
    assert.matches("rc=0", out[2], out[2])
    local products = {}
    for _, pr in ipairs(emu.control("/__emulator/wmpf/products").products) do
      if pr.english_product_name == "Twin" then products[#products + 1] = pr end
    end
    assert.equal(1, #products, "products created: " .. cjson.encode(products))
    assert.equal(100, products[1].devices)
    local state = cjson.decode(files.read(dir .. "/state/Twin.product.json"))
    assert.equal(("%d"):format(products[1].product_id), tostring(state.product_id))
  end)
end)
