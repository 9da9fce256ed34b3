-- The session state machine (cloudvoip_server.h, cloud-server-sdk.html): every (from, to) pair.
local machine = require "wxhw.call.machine"

-- Written out independently of the implementation's table.
local LEGAL = {
  "IDLE>CALLING", "IDLE>BUSY", "IDLE>ABORTED", "IDLE>CANCELED", "IDLE>REJECTED",
  "CALLING>TALKING", "CALLING>REJECTED", "CALLING>CANCELED", "CALLING>TIMEOUT", "CALLING>BUSY",
  "CALLING>ABORTED", "CALLING>HANGUP_BY_CALLEE",
  "TALKING>HANGUP_BY_CALLER", "TALKING>HANGUP_BY_CALLEE", "TALKING>ABORTED",
}
local SDK = { IDLE = 0, CALLING = 1, TALKING = 2, REJECTED = 3, CANCELED = 4, HANGUP_BY_CALLER = 5,
              HANGUP_BY_CALLEE = 6, ABORTED = 7, BUSY = 8, TIMEOUT = 9 }

describe("call state machine", function()
  it("numbers states and reasons as the SDK header does", function()
    for name, n in pairs(SDK) do
      assert.equal(n, machine.code[name])
      assert.equal(name, machine.state(n))
      assert.equal(name, machine.state(name:lower()))
    end
    assert.equal(10, #machine.states)
    assert.same({ UNKNOWN = 0, MANUAL = 1, SYSTEM = 6, APP = 7, DEVICE = 8, TIMEOUT = 10, REJECT = 11 }, machine.reasons)
    assert.equal("REJECT", machine.reason(11))
    assert.is_nil(machine.reason(2))
    assert.is_nil(machine.state(10))
    assert.is_nil(machine.state("RINGING"))
  end)

  it("allows exactly the legal transitions (all 100 pairs)", function()
    local legal = {}
    for _, p in ipairs(LEGAL) do legal[p] = true end
    local n_ok, n_bad = 0, 0
    for from in pairs(SDK) do
      for to in pairs(SDK) do
        local ok, err = machine.check(from, to)
        if legal[from .. ">" .. to] then
          assert(ok, from .. " -> " .. to .. " should be legal: " .. tostring(err))
          n_ok = n_ok + 1
        else
          assert.is_nil(ok, from .. " -> " .. to .. " should be illegal")
          assert.equal("state", err.kind)
          assert.truthy(err.message:find(to, 1, true))
          n_bad = n_bad + 1
        end
      end
    end
    assert.equal(#LEGAL, n_ok)
    assert.equal(100 - #LEGAL, n_bad)
    -- by number too
    assert.is_true(machine.check(1, 2))
    assert.is_nil((machine.check(2, 1)))
    assert.is_nil((machine.check("IDLE", "NOPE")))
  end)

  it("treats the seven end states as final and gives them default reasons", function()
    local finals = 0
    for name in pairs(SDK) do
      if machine.is_final(name) then finals = finals + 1; assert.is_false(machine.is_active(name)) end
    end
    assert.equal(7, finals)
    assert.equal("TIMEOUT", machine.default_reason("TIMEOUT"))
    assert.equal("REJECT", machine.default_reason("REJECTED"))
    assert.equal("MANUAL", machine.default_reason("HANGUP_BY_CALLEE"))
    assert.equal("UNKNOWN", machine.default_reason("ABORTED"))
    assert.is_nil(machine.default_reason("TALKING"))
  end)
end)
