# frozen_string_literal: true

# Minimal stand-in for an S3 endpoint, for tests of the Mastodon test double's S3 code path: answers
# 200 to every request and appends its request line, headers and body to LOG. It checks nothing
# itself (no signature verification): the test reads LOG.  usage: ruby fake-s3.rb PORT LOG
require 'socket'

server = TCPServer.new('127.0.0.1', Integer(ARGV.fetch(0)))
loop do
  client = server.accept
  head = []
  while (line = client.gets) && line != "\r\n"
    head << line.chomp
  end
  length = head.grep(/\Acontent-length:/i).first.to_s.split(':').last.to_i
  body = client.read(length)
  File.open(ARGV.fetch(1), 'a') { |f| f.puts(head, '', body, '----') }
  client.write "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: \"0\"\r\nConnection: close\r\n\r\n"
  client.close
end
