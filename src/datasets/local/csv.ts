// A strict RFC 4180 CSV reader that remembers on which line each record starts, so metadata.csv
// errors can point at the line. Quoted fields may hold commas, quotes ("") and newlines.

export interface CsvRecord {
  fields: string[];
  /** 1-based line where the record starts */
  line: number;
}

export class CsvSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly col: number,
  ) {
    super(message);
  }
}

export function parseCsv(text: string): CsvRecord[] {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let col = 1;
  let recordLine = 1;
  let i = 0;
  // a field that began with a quote may be empty ("") and is still a field
  let fieldStarted = false;
  let recordStarted = false;

  const endRecord = () => {
    fields.push(field);
    if (recordStarted || field !== '') records.push({ fields, line: recordLine });
    fields = [];
    field = '';
    fieldStarted = false;
    recordStarted = false;
  };

  while (i < src.length) {
    const ch = src[i];
    if (ch === '"' && field === '' && !fieldStarted) {
      fieldStarted = true;
      recordStarted = true;
      const startLine = line;
      const startCol = col;
      i++;
      col++;
      for (;;) {
        if (i >= src.length) throw new CsvSyntaxError('quoted field is never closed', startLine, startCol);
        const c = src[i];
        if (c === '"') {
          if (src[i + 1] === '"') {
            field += '"';
            i += 2;
            col += 2;
            continue;
          }
          i++;
          col++;
          break;
        }
        if (c === '\n') {
          line++;
          col = 1;
        } else {
          col++;
        }
        field += c;
        i++;
      }
      const next = src[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new CsvSyntaxError('unexpected character after a closing quote (write "" for a quote inside a quoted field)', line, col);
      }
      continue;
    }
    if (ch === ',') {
      fields.push(field);
      field = '';
      fieldStarted = false;
      recordStarted = true;
      i++;
      col++;
      continue;
    }
    if (ch === '\r' || ch === '\n') {
      endRecord();
      i += ch === '\r' && src[i + 1] === '\n' ? 2 : 1;
      line++;
      col = 1;
      recordLine = line;
      continue;
    }
    if (ch === '"') throw new CsvSyntaxError('quote inside an unquoted field (quote the whole field and write "" for the quote)', line, col);
    field += ch;
    fieldStarted = true;
    recordStarted = true;
    i++;
    col++;
  }
  if (recordStarted || field !== '') endRecord();
  return records;
}
