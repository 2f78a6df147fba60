package io.statebackend.internal;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.apache.flink.core.memory.DataInputView;

/**
 * Flink's {@link DataInputView} over the first bytes of a direct {@link ByteBuffer}: serializers
 * read a native result where the native side wrote it, without copying it into a {@code byte[]}.
 */
final class DirectInputView implements DataInputView {
    private ByteBuffer buffer;
    private int position;
    private int limit;

    /** Reads {@code buffer}'s bytes {@code 0..limit} from the start. */
    DirectInputView reset(ByteBuffer buffer, int limit) {
        this.buffer = buffer;
        this.position = 0;
        this.limit = limit;
        return this;
    }

    int position() {
        return position;
    }

    int available() {
        return limit - position;
    }

    /** Moves to {@code target}: the end of a field a serializer has just read. */
    void skipTo(int target) throws IOException {
        if (position > target) {
            throw new IOException(
                    "a serializer read " + (position - target) + " bytes past its field");
        }
        if (target > limit) {
            throw new EOFException();
        }
        position = target;
    }

    private int advance(int n) throws EOFException {
        int at = position;
        if (n > limit - at) {
            throw new EOFException();
        }
        position = at + n;
        return at;
    }

    @Override
    public void readFully(byte[] b) throws IOException {
        readFully(b, 0, b.length);
    }

    @Override
    public void readFully(byte[] b, int off, int len) throws IOException {
        buffer.get(advance(len), b, off, len);
    }

    @Override
    public int skipBytes(int n) {
        int skipped = Math.max(0, Math.min(n, limit - position));
        position += skipped;
        return skipped;
    }

    @Override
    public boolean readBoolean() throws IOException {
        return readByte() != 0;
    }

    @Override
    public byte readByte() throws IOException {
        return buffer.get(advance(1));
    }

    @Override
    public int readUnsignedByte() throws IOException {
        return readByte() & 0xff;
    }

    @Override
    public short readShort() throws IOException {
        return buffer.getShort(advance(2));
    }

    @Override
    public int readUnsignedShort() throws IOException {
        return readShort() & 0xffff;
    }

    @Override
    public char readChar() throws IOException {
        return buffer.getChar(advance(2));
    }

    @Override
    public int readInt() throws IOException {
        return buffer.getInt(advance(4));
    }

    @Override
    public long readLong() throws IOException {
        return buffer.getLong(advance(8));
    }

    @Override
    public float readFloat() throws IOException {
        return Float.intBitsToFloat(readInt());
    }

    @Override
    public double readDouble() throws IOException {
        return Double.longBitsToDouble(readLong());
    }

    /** {@link java.io.DataInput#readLine()}: bytes as Latin-1 up to a line end; null at the end. */
    @Override
    public String readLine() throws IOException {
        if (position >= limit) {
            return null;
        }
        StringBuilder line = new StringBuilder();
        while (position < limit) {
            int c = buffer.get(position++) & 0xff;
            if (c == '\n') {
                break;
            }
            if (c == '\r') {
                if (position < limit && buffer.get(position) == '\n') {
                    position++;
                }
                break;
            }
            line.append((char) c);
        }
        return line.toString();
    }

    @Override
    public String readUTF() throws IOException {
        return DataInputStream.readUTF(this);
    }

    @Override
    public void skipBytesToRead(int numBytes) throws IOException {
        advance(numBytes);
    }

    @Override
    public int read(byte[] b, int off, int len) {
        if (len == 0) {
            return 0;
        }
        int n = Math.min(len, limit - position);
        if (n <= 0) {
            return -1;
        }
        buffer.get(position, b, off, n);
        position += n;
        return n;
    }

    @Override
    public int read(byte[] b) {
        return read(b, 0, b.length);
    }
}
