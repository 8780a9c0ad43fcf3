//! A local Tablestore-compatible server on durable embedded storage, with streams and the Tunnel Service.
