-- wxhw.fileio: files and processes without a shell (csrc/fileio.c,
-- csrc/proc.c), with their failures as nil, err.
local fileio = require "wxhw.fileio"
local files = require "support.files"
local proc = fileio.proc

local q = files.quote

local function sh(cmd) return select(2, files.sh(cmd)) end

local function io_error(err, pattern)
  assert.equal("io", err and err.kind, tostring(err))
  if pattern then assert.matches(pattern, err.message) end
end

describe("wxhw.fileio #c", function()
  local dir
  before_each(function() dir = files.tmpdir("wxhw-fileio") end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  describe("mkdir_p", function()
    it("creates missing parents, accepts what exists and applies the mode", function()
      assert.is_true(fileio.mkdir_p(dir .. "/a/b/c", "750"))
      assert.equal("750", files.mode(dir .. "/a/b/c"))
      assert.is_true(fileio.mkdir_p(dir .. "/a/b/c"))
      assert.is_true(fileio.mkdir_p(dir .. "/a//d/"))
      assert.is_true(fileio.mkdir_p(dir))
      assert.equal("d", sh("ls " .. q(dir .. "/a") .. " | grep d"):match("d"))
    end)

    it("fails under a file and on a file, and refuses an empty path", function()
      files.write(dir .. "/f", "x")
      local ok, err = fileio.mkdir_p(dir .. "/f/sub")
      assert.is_nil(ok)
      io_error(err, "^mkdir .*/f/sub: Not a directory$")
      ok, err = fileio.mkdir_p(dir .. "/f")
      assert.is_nil(ok)
      io_error(err, "Not a directory")
      assert.has_error(function() fileio.mkdir_p("") end)
      assert.has_error(function() fileio.mkdir_p(dir .. "/x", "9") end)
    end)
  end)

  describe("chmod and create_private", function()
    it("chmod takes octal digits or a number", function()
      files.write(dir .. "/f", "x")
      assert.is_true(fileio.chmod(dir .. "/f", "640"))
      assert.equal("640", files.mode(dir .. "/f"))
      assert.is_true(fileio.chmod(dir .. "/f", tonumber("604", 8)))
      assert.equal("604", files.mode(dir .. "/f"))
      local ok, err = fileio.chmod(dir .. "/missing", "600")
      assert.is_nil(ok)
      io_error(err, "^chmod .*/missing: No such file or directory$")
      assert.has_error(function() fileio.chmod(dir .. "/f") end)
      assert.has_error(function() fileio.chmod(dir .. "/f", "rw") end)
    end)

    it("create_private makes an empty 0600 file whatever the umask, also over an open one", function()
      local p = dir .. "/key"
      assert.is_true(fileio.create_private(p))
      assert.equal("600", files.mode(p))
      files.write(p, "old secret")
      fileio.chmod(p, "644")
      assert.is_true(fileio.create_private(p))
      assert.equal("600", files.mode(p))
      assert.equal("", files.read(p))
    end)

    it("create_private refuses a symbolic link and a missing directory", function()
      files.write(dir .. "/target", "keep")
      os.execute("ln -s " .. q(dir .. "/target") .. " " .. q(dir .. "/link"))
      local ok, err = fileio.create_private(dir .. "/link")
      assert.is_nil(ok)
      io_error(err, "^create .*/link: ")
      assert.equal("keep", files.read(dir .. "/target"))
      ok, err = fileio.create_private(dir .. "/no/key")
      assert.is_nil(ok)
      io_error(err, "No such file or directory")
    end)

    it("write_atomic replaces a file whole, privately when asked", function()
      local p = dir .. "/state.json"
      assert.is_true(fileio.write_atomic(p, "one"))
      assert.is_true(fileio.write_atomic(p, "two", true))
      assert.equal("two", files.read(p))
      assert.equal("600", files.mode(p))
      assert.is_nil(io.open(p .. ".tmp"))
      local ok, err = fileio.write_atomic(dir .. "/no/state.json", "x")
      assert.is_nil(ok)
      io_error(err, "cannot write")
      assert.equal("two", fileio.read_file(p))
      ok, err = fileio.read_file(dir .. "/missing")
      assert.is_nil(ok)
      io_error(err, "/missing: No such file or directory$")
    end)
  end)

  describe("getcwd, absolute and isatty", function()
    it("getcwd is the shell's pwd", function()
      assert.equal(sh("pwd -P"):match("[^\n]+"), fileio.getcwd())
      assert.equal("/x/y", fileio.absolute("/x/y"))
      assert.equal(fileio.getcwd() .. "/rel/p", fileio.absolute("rel/p"))
    end)

    it("isatty: a file and a pipe are not terminals; it agrees with test -t", function()
      local f = assert(io.open(dir .. "/f", "w"))
      assert.is_false(fileio.isatty(f))
      f:close()
      local p = io.popen("true")
      assert.is_false(fileio.isatty(p))
      p:close()
      local t = os.execute("test -t 1")
      assert.equal(t == true or t == 0, fileio.isatty(1))
      assert.has_error(function() fileio.isatty(-1) end)
    end)
  end)
end)

describe("wxhw.fileio.proc #c", function()
  local dir
  before_each(function() dir = files.tmpdir("wxhw-proc") end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("spawn runs argv without a shell, with standard output and error to a file, and wait reads its status", function()
    local out = dir .. "/out"
    local pid = assert(proc.spawn({ "sh", "-c", "echo \"$1\"; echo err >&2; exit 3", "sh", "a 'quoted' $word" },
      { stdout = out, stderr = "stdout" }))
    local how, code = proc.wait(pid)
    assert.equal("exit", how)
    assert.equal(3, code)
    assert.equal("a 'quoted' $word\nerr\n", files.read(out))
    assert.is_false(proc.alive(pid))
  end)

  it("append = true: output paths are appended to (>>), not truncated", function()
    local log = dir .. "/log"
    files.write(log, "before\n")
    for _, word in ipairs{ "one", "two" } do
      local pid = assert(proc.spawn({ "sh", "-c", "echo " .. word .. "; echo err >&2" },
        { stdout = log, stderr = "stdout", append = true }))
      proc.wait(pid)
    end
    assert.equal("before\none\nerr\ntwo\nerr\n", files.read(log))
    local pid = assert(proc.spawn({ "echo", "three" }, { stdout = log }))
    proc.wait(pid)
    assert.equal("three\n", files.read(log))
  end)

  it("spawn: a missing program or an unwritable output is an error, not a child", function()
    local pid, err = proc.spawn({ "wxhw-no-such-program" })
    assert.is_nil(pid)
    io_error(err, "^spawn wxhw%-no%-such%-program: No such file or directory$")
    pid, err = proc.spawn({ "true" }, { stdout = dir .. "/no/out" })
    assert.is_nil(pid)
    io_error(err, "^spawn: stdout .*/no/out: No such file or directory$")
    pid, err = proc.spawn({ dir })
    assert.is_nil(pid)
    io_error(err, "Permission denied")
    assert.has_error(function() proc.spawn({}) end)
    assert.has_error(function() proc.spawn({ "true" }, { env = { ["A=B"] = "x" } }) end)
    assert.has_error(function() proc.spawn({ "true" }, { stdout = 1 }) end)
  end)

  it("spawn: env sets and removes names over ours; stdin null reads nothing", function()
    local out = dir .. "/out"
    local pid = assert(proc.spawn({ "sh", "-c", "echo \"$WXHW_T1-${HOME-unset}-$PATH\"; cat" },
      { stdin = "null", stdout = out, env = { WXHW_T1 = "one", HOME = false } }))
    assert.same({ "exit", 0 }, { proc.wait(pid) })
    assert.equal("one-unset-" .. os.getenv("PATH") .. "\n", files.read(out))
    pid = assert(proc.spawn({ "sh", "-c", "exit 0" }, { stdout = "null", stderr = "null" }))
    assert.same({ "exit", 0 }, { proc.wait(pid) })
  end)

  it("close_fds: the child keeps only 0, 1 and 2; without it, it inherits what the io library opened", function()
    local held = assert(io.open(dir .. "/held", "w")) -- not close-on-exec
    local function child_fds(opts)
      opts.stdout = dir .. "/fds"
      local pid = assert(proc.spawn({ "sh", "-c", "ls /proc/$$/fd" }, opts))
      proc.wait(pid)
      local fds = {}
      for n in files.read(dir .. "/fds"):gmatch("%d+") do fds[#fds + 1] = tonumber(n) end
      table.sort(fds)
      return fds
    end
    assert.same({ 0, 1, 2 }, child_fds({ close_fds = true, stdin = "null" }))
    assert.is_true(#child_fds({}) > 3)
    held:close()
  end)

  it("a child does not inherit an ignored SIGPIPE (luasocket ignores it in us)", function()
    require "socket"
    local out = dir .. "/out"
    local pid = assert(proc.spawn({ "sh", "-c", "grep SigIgn /proc/$$/status" }, { stdout = out }))
    proc.wait(pid)
    local mask = tonumber(files.read(out):match("SigIgn:%s*(%x+)"), 16)
    assert.equal(0, math.floor(mask / 2 ^ 12) % 2, "SIGPIPE ignored in the child")
  end)

  it("kill, alive and wait: TERM by name, a running child, nohang", function()
    local pid = assert(proc.spawn({ "sleep", "30" }))
    assert.is_true(proc.alive(pid))
    assert.is_false(proc.wait(pid, true))
    assert.is_true(proc.kill(pid, 0))
    assert.is_true(proc.kill(pid))
    assert.same({ "signal", 15 }, { proc.wait(pid) })
    assert.is_false(proc.alive(pid))
    local ok, err = proc.kill(pid, "TERM")
    assert.is_nil(ok)
    io_error(err, "^kill: No such process$")
    ok, err = proc.wait(pid)
    assert.is_nil(ok)
    io_error(err, "^waitpid: No child processes$")
    assert.has_error(function() proc.kill(pid, "NOSUCH") end)
    assert.has_error(function() proc.kill(0, "TERM") end)
    assert.has_error(function() proc.kill(-1, "TERM") end)
  end)

  it("alive reaps a child that exited (a zombie is not alive) and sees processes not ours", function()
    local pid = assert(proc.spawn({ "true" }))
    local deadline = os.time() + 5
    while proc.alive(pid) and os.time() < deadline do require("wxhw.clock").sleep(0.01) end
    assert.is_false(proc.alive(pid))
    assert.is_true(proc.alive(1))
    assert.equal(tonumber(files.read("/proc/self/stat"):match("^%d+")), proc.pid())
    assert.is_true(proc.nproc() >= 1)
  end)

  it("background = true: the child ignores Ctrl-C (SIGINT) as `cmd &` does; without it INT ends it", function()
    local bg = assert(proc.spawn({ "sleep", "30" }, { background = true }))
    local fg = assert(proc.spawn({ "sleep", "30" }))
    assert.is_true(proc.kill(bg, "SIGINT"))
    assert.is_true(proc.kill(fg, 2))
    assert.same({ "signal", 2 }, { proc.wait(fg) })
    require("wxhw.clock").sleep(0.1)
    assert.is_false(proc.wait(bg, true), "the background child died of SIGINT")
    proc.kill(bg, "KILL")
    assert.same({ "signal", 9 }, { proc.wait(bg) })
  end)
end)
