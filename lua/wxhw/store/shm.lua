return require "wxhw.token.store.shm"
