return require "wxhw.token.store.redis"
