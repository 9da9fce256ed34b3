return require "wxhw.kv"
