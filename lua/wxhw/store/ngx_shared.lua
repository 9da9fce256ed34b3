return require "wxhw.token.store.ngx_shared"
