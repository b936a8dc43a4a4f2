"""Credit: the versioned policy (`policy`), the evidence types (`evidence`) and the pure engine (`engine`)
that turn server-measured attendance into 学时. Pure modules: no SQL, no HTTP, no clock."""
