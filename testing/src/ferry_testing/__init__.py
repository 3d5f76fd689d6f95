"""Dev only: helpers every test suite shares. One module a topic, named after what it supports."""
