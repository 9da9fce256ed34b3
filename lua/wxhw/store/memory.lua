return require "wxhw.token.store.memory"
